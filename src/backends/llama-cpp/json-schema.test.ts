import {describe, expect, it} from "vitest";
import {toGrammarSchema} from "./json-schema.js";
import {InvalidRequestError} from "../../runtime/errors.js";

describe("toGrammarSchema", () => {
    it("keeps enforceable keywords and drops annotations", () => {
        expect(toGrammarSchema({
            title: "Person", $schema: "x", type: "object",
            properties: {name: {type: "string", maxLength: 20, description: "n"}, tags: {type: "array", items: {enum: ["a", "b"]}}},
            required: ["name"], additionalProperties: false
        })).toEqual({
            type: "object",
            properties: {name: {type: "string", maxLength: 20, description: "n"}, tags: {type: "array", items: {enum: ["a", "b"]}}},
            required: ["name"], additionalProperties: false
        });
    });

    it("turns anyOf into oneOf", () => {
        expect(toGrammarSchema({anyOf: [{type: "string"}, {type: "null"}]})).toEqual({oneOf: [{type: "string"}, {type: "null"}]});
    });

    it.each([
        [{type: "string", pattern: "^a$"}, "schema.pattern"],
        [{type: "object", properties: {age: {type: "integer", minimum: 0}}}, "schema.properties.age.minimum"],
        [{allOf: [{type: "string"}]}, "schema.allOf"],
        [{type: "string", format: "email"}, "schema.format"],
        [{type: "wat"}, "schema.type"],
        [{$ref: "#/definitions/x"}, "schema.$ref"]
    ])("rejects what it cannot enforce: %j", (schema, where) => {
        expect(() => toGrammarSchema(schema)).toThrow(InvalidRequestError);
        expect(() => toGrammarSchema(schema)).toThrow(where);
    });
});
