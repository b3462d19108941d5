import type {Llama, LlamaGrammar} from "node-llama-cpp";
import type {OutputConstraint} from "../backend.js";
import type {ResponseConstraint} from "../../runtime/types.js";
import {InvalidRequestError} from "../../runtime/errors.js";
import {toGrammarSchema} from "./json-schema.js";

/** A GBNF grammar that output must follow, built from an OpenAI `response_format`. */
export class LlamaOutputConstraint implements OutputConstraint {
    readonly trimTrailingWhitespace: boolean;
    readonly stopStrings: readonly string[];

    constructor(readonly grammar: LlamaGrammar) {
        this.trimTrailingWhitespace = grammar.trimWhitespaceSuffix;
        this.stopStrings = grammar.stopGenerationTriggers.flatMap((trigger) =>
            typeof trigger === "string" ? [trigger] : (Array.isArray(trigger) ? [] : [String(trigger)])
        );
    }
}

const MAX_CACHED_GRAMMARS = 32;

/** Compiles grammars once per distinct schema (clients send the same schema again and again). */
export class GrammarCache {
    private readonly cache = new Map<string, Promise<LlamaOutputConstraint>>();

    constructor(private readonly llama: Llama) {}

    get(constraint: ResponseConstraint): Promise<LlamaOutputConstraint> {
        const key = constraint.type === "json_schema" ? JSON.stringify(constraint.schema) : constraint.type;
        let entry = this.cache.get(key);
        if (entry == null) {
            entry = this.compile(constraint);
            entry.catch(() => this.cache.delete(key));
            this.cache.set(key, entry);
            if (this.cache.size > MAX_CACHED_GRAMMARS)
                this.cache.delete(this.cache.keys().next().value!);
        }
        return entry;
    }

    private async compile(constraint: ResponseConstraint) {
        if (constraint.type === "json_object")
            return new LlamaOutputConstraint(await this.llama.getGrammarFor("json"));
        const param = constraint.param ?? "response_format";
        const schema = param === "response_format" ? toGrammarSchema(constraint.schema) : toGrammarSchema(constraint.schema, param, param);
        try {
            return new LlamaOutputConstraint(await this.llama.createGrammarForJsonSchema(schema as never));
        } catch (error) {
            throw new InvalidRequestError(
                `${param === "response_format" ? "response_format.json_schema.schema" : param} is not supported: ${(error as Error).message}`,
                param
            );
        }
    }
}
