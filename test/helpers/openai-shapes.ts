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

/** A non-streamed chat or text completion: one choice per `n`, each with its index. */
export function expectCompletionObject(body: unknown, kind: "chat" | "completion", context = "") {
    type Choice = {index: number; finish_reason: string; message?: {content: unknown; tool_calls?: {id: string; function: {name: string; arguments: string}}[]}; text?: unknown};
    const value = body as {object: string; id: string; choices: Choice[]; usage: Record<string, number>};
    expect(value.object, context).toBe(kind === "chat" ? "chat.completion" : "text_completion");
    expect(value.id, context).toBeTypeOf("string");
    expect(value.choices.length, context).toBeGreaterThanOrEqual(1);
    for (const [index, choice] of value.choices.entries()) {
        expect(choice.index, context).toBe(index);
        expect(["stop", "length", "tool_calls"], context).toContain(choice.finish_reason);
        if (kind === "completion") expect(choice.text, context).toBeTypeOf("string");
        else if (choice.finish_reason === "tool_calls") {
            expect(choice.message!.tool_calls!.length, context).toBeGreaterThan(0);
            for (const call of choice.message!.tool_calls!) expect(() => JSON.parse(call.function.arguments), context).not.toThrow();
        } else expect(choice.message!.content, context).toBeTypeOf("string");
    }
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
