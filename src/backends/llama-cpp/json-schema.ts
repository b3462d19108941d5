import {InvalidRequestError} from "../../runtime/errors.js";

/**
 * Checks a `response_format` JSON schema against what node-llama-cpp's grammar generator
 * enforces, and rewrites the parts that have an exact equivalent. A keyword it would silently
 * ignore (say `pattern` or `minimum`) is rejected instead: the client was promised output that
 * matches the schema.
 */

/** Keywords that only annotate; dropped before the grammar is built. */
const ANNOTATIONS = new Set(["title", "$schema", "$id", "$comment", "default", "examples", "deprecated", "readOnly", "writeOnly", "strict", "name"]);

const ENFORCED = new Set([
    "type", "description", "enum", "const", "oneOf", "properties", "required", "additionalProperties",
    "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems", "minLength", "maxLength",
    "format", "$ref", "$defs"
]);

const FORMATS = new Set(["date-time", "time", "date"]);
const TYPES = new Set(["string", "number", "integer", "boolean", "null", "object", "array"]);

export function toGrammarSchema(schema: unknown, path = "response_format.json_schema.schema", param = "response_format"): Record<string, unknown> {
    if (schema == null || typeof schema !== "object" || Array.isArray(schema))
        throw unsupported(path, "a schema must be an object", param);

    const result: Record<string, unknown> = {};
    for (const [keyword, value] of Object.entries(schema)) {
        const at = `${path}.${keyword}`;
        if (ANNOTATIONS.has(keyword))
            continue;
        // anyOf needs only one branch to match; a grammar that produces exactly one branch satisfies it.
        const target = keyword === "anyOf" ? "oneOf" : keyword;
        if (!ENFORCED.has(target))
            throw unsupported(at, `the keyword '${keyword}' cannot be enforced while generating`, param);

        switch (target) {
            case "type":
                for (const type of Array.isArray(value) ? value : [value])
                    if (!TYPES.has(type as string)) throw unsupported(at, `unknown type ${JSON.stringify(type)}`, param);
                result.type = value;
                break;
            case "format":
                if (!FORMATS.has(value as string))
                    throw unsupported(at, `format '${String(value)}' is not supported (supported: ${[...FORMATS].join(", ")})`, param);
                result.format = value;
                break;
            case "$ref":
                if (typeof value !== "string" || !value.startsWith("#/$defs/"))
                    throw unsupported(at, "only local references of the form #/$defs/NAME are supported", param);
                result.$ref = value;
                break;
            case "oneOf":
            case "prefixItems":
                if (!Array.isArray(value)) throw unsupported(at, "must be an array of schemas", param);
                result[target] = value.map((entry, index) => toGrammarSchema(entry, `${at}[${index}]`, param));
                break;
            case "properties":
            case "$defs":
                result[target] = mapValues(value, at, param);
                break;
            case "items":
                result.items = toGrammarSchema(value, at, param);
                break;
            case "additionalProperties":
                result.additionalProperties = typeof value === "boolean" ? value : toGrammarSchema(value, at, param);
                break;
            default:
                result[target] = value;
        }
    }
    return result;
}

function mapValues(value: unknown, path: string, param: string) {
    if (value == null || typeof value !== "object" || Array.isArray(value))
        throw unsupported(path, "must be an object of schemas", param);
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, toGrammarSchema(entry, `${path}.${key}`, param)]));
}

function unsupported(path: string, reason: string, param: string) {
    return new InvalidRequestError(`Unsupported JSON schema at ${path}: ${reason}.`, param);
}
