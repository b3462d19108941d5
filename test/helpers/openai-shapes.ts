import {expect} from "vitest";

/** Statuses a well-behaved server may answer bad or unlucky requests with. 500 is never one. */
export const CLIENT_ERROR_STATUSES = new Set([400, 401, 403, 404, 409, 413, 415, 429, 503]);

/** `{"error": {message, type, param, code}}` and nothing else. */
export function expectOpenAIErrorBody(body: unknown, context = "") {
    expect(body, context).toBeTypeOf("object");
    const {error} = body as {error: Record<string, unknown>};
    expect(Object.keys(body as object), context).toEqual(["error"]);
    expect(Object.keys(error).sort(), context).toEqual(["code", "message", "param", "type"]);
    expect(error.message, context).toBeTypeOf("string");
    expect((error.message as string).length, context).toBeGreaterThan(0);
    expect(error.type, context).toBeTypeOf("string");
    expect(error.param === null || typeof error.param === "string", context).toBe(true);
    expect(error.code === null || typeof error.code === "string", context).toBe(true);
}

/** A non-streamed chat or text completion. */
export function expectCompletionObject(body: unknown, kind: "chat" | "completion", context = "") {
    const value = body as {object: string; id: string; choices: {finish_reason: string; message?: {content: unknown}; text?: unknown}[]; usage: Record<string, number>};
    expect(value.object, context).toBe(kind === "chat" ? "chat.completion" : "text_completion");
    expect(value.id, context).toBeTypeOf("string");
    expect(value.choices, context).toHaveLength(1);
    expect(["stop", "length"], context).toContain(value.choices[0]!.finish_reason);
    if (kind === "chat") expect(value.choices[0]!.message!.content, context).toBeTypeOf("string");
    else expect(value.choices[0]!.text, context).toBeTypeOf("string");
    expect(value.usage.completion_tokens, context).toBeTypeOf("number");
}

/**
 * An SSE body: `data:` events, each a chunk of the right object (or an error object sent after
 * the headers), ending with `data: [DONE]`. Returns the chunks.
 */
export function expectSseStream(text: string, kind: "chat" | "completion", context = "") {
    const events = text.split("\n\n").filter((event) => event.length > 0);
    expect(events.every((event) => event.startsWith("data: ")), context).toBe(true);
    expect(events.at(-1), context).toBe("data: [DONE]");
    const chunks = events.slice(0, -1).map((event) => JSON.parse(event.slice(6)) as Record<string, unknown>);
    for (const chunk of chunks) {
        if ("error" in chunk) {
            expectOpenAIErrorBody(chunk, context);
            continue;
        }
        expect(chunk.object, context).toBe(kind === "chat" ? "chat.completion.chunk" : "text_completion");
    }
    return chunks;
}
