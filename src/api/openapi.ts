import {z} from "zod";
import {chatCompletionBody, completionBody} from "./openai/schemas.js";
import {embeddingsBody} from "./openai/embeddings.js";
import {detokenizeBody, tokenizeBody} from "./utility-routes.js";
import {overrideBody} from "./admin.js";

/**
 * The OpenAPI 3.1 document of the HTTP API. Request bodies are the zod schemas the routes
 * validate with, converted by zod itself, so the document cannot drift from the code.
 * Responses are described in words (docs/api.md has the shapes).
 */
let cached: object | undefined;

export function openApiDocument(): object {
    cached ??= build();
    return cached;
}

function jsonBody(schema: z.ZodType, description?: string) {
    return {
        required: true,
        ...(description == null ? {} : {description}),
        content: {"application/json": {schema: z.toJSONSchema(schema, {io: "input", unrepresentable: "any", target: "draft-2020-12"})}}
    };
}

const errorResponse = {
    description: "An OpenAI error object: {error: {message, type, param, code}}",
    content: {"application/json": {schema: {$ref: "#/components/schemas/Error"}}}
};

function operation(summary: string, responses: Record<string, string>, requestBody?: object) {
    return {
        summary,
        ...(requestBody == null ? {} : {requestBody}),
        responses: {
            ...Object.fromEntries(Object.entries(responses).map(([status, description]) => [status, {description}])),
            "400": errorResponse,
            default: errorResponse
        }
    };
}

function build() {
    return {
        openapi: "3.1.0",
        info: {
            title: "edge-llm",
            description: "OpenAI-compatible API of the edge-llm on-device runtime, with llama-server's utility endpoints. Field support: docs/api.md.",
            version: "1"
        },
        paths: {
            "/v1/chat/completions": {post: operation("Chat completion (JSON, or SSE with stream: true); tools, logprobs, n", {"200": "chat.completion, or text/event-stream of chat.completion.chunk ending with [DONE]"}, jsonBody(chatCompletionBody))},
            "/v1/completions": {post: operation("Text completion (legacy); logprobs, echo, n", {"200": "text_completion, or an SSE stream of them ending with [DONE]"}, jsonBody(completionBody))},
            "/v1/embeddings": {post: operation("Embeddings of one or more inputs (strings or token ids)", {"200": "list of embedding objects with usage"}, jsonBody(embeddingsBody))},
            "/v1/models": {get: operation("Loaded models", {"200": "list of model objects"})},
            "/v1/models/{model}": {
                get: {
                    ...operation("One model", {"200": "model object"}),
                    parameters: [{name: "model", in: "path", required: true, schema: {type: "string"}}]
                }
            },
            "/v1/ws": {get: operation("WebSocket API (upgrade); protocol in docs/websocket.md", {"101": "Switching Protocols"})},
            "/tokenize": {post: operation("Tokens of a text (llama-server shape)", {"200": "{tokens: number[]} or {tokens: {id, piece}[]} with with_pieces"}, jsonBody(tokenizeBody))},
            "/detokenize": {post: operation("Text of token ids (llama-server shape)", {"200": "{content: string}"}, jsonBody(detokenizeBody))},
            "/props": {get: operation("Model and runtime properties (llama-server style)", {"200": "properties", "503": "model not loaded yet"})},
            "/health": {get: operation("Readiness, model, slots, KV cache, power", {"200": "ready", "503": "loading, failed or shutting down"})},
            "/metrics": {get: operation("Prometheus metrics", {"200": "text exposition format"})},
            "/admin/power": {
                get: operation("Power state (needs the admin token)", {"200": "power status", "401": "wrong token", "404": "admin endpoints disabled"}),
                post: operation("Force a power level, or null to follow the sensors (needs the admin token)", {"200": "power status"}, jsonBody(overrideBody))
            },
            "/openapi.json": {get: operation("This document", {"200": "OpenAPI 3.1 document"})}
        },
        components: {
            schemas: {
                Error: {
                    type: "object",
                    required: ["error"],
                    properties: {
                        error: {
                            type: "object",
                            required: ["message", "type"],
                            properties: {message: {type: "string"}, type: {type: "string"}, param: {type: ["string", "null"]}, code: {type: ["string", "null"]}}
                        }
                    }
                }
            }
        }
    };
}
