import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {startTestServer, type TestServer} from "./helpers/server.js";
import {isStories260K} from "./helpers/model.js";

/** Context overflow policies on the real model: a 512-token window, one sequence. */

let server: TestServer;
let truncating: TestServer;

beforeAll(async () => {
    [server, truncating] = await Promise.all([
        startTestServer({contextSize: 512, parallel: 1}),
        startTestServer({contextSize: 512, parallel: 1, contextOverflow: {policy: "truncate"}})
    ]);
});
afterAll(async () => {
    await Promise.all([server?.stop(), truncating?.stop()]);
});

const longPrompt = "Once upon a time there was a little girl named Lily. She loved to play outside. ".repeat(60);

async function post(target: TestServer, path: string, body: Record<string, unknown>) {
    const response = await fetch(`${target.url}${path}`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({model: target.modelId, temperature: 0, ...body})
    });
    return {status: response.status, body: await response.json() as Record<string, any>};
}

describe("context_overflow: slide", () => {
    it("generates 10,000 tokens in a 512-token window with flat memory, keeping the sink tokens", async () => {
        const prompt = "Once upon a time";
        // A short run first: the sequence then starts with the prompt's tokens.
        await post(server, "/v1/completions", {prompt, max_tokens: 4});
        const sinks = server.runtime.sequences[0]!.cachedTokens.slice(0, 4);

        const response = await fetch(`${server.url}/v1/completions`, {
            method: "POST",
            headers: {"content-type": "application/json"},
            body: JSON.stringify({
                model: server.modelId, prompt, max_tokens: 10_000, temperature: 0, stream: true,
                stream_options: {include_usage: true}, context_overflow: "slide"
            })
        });
        expect(response.status).toBe(200);
        const decoder = new TextDecoder();
        let buffered = "";
        let streamed = 0;
        let rssAfterWarmUp = 0;
        const chunks: any[] = [];
        for await (const bytes of response.body!) {
            buffered += decoder.decode(bytes, {stream: true});
            const parts = buffered.split("\n\n");
            buffered = parts.pop()!;
            for (const part of parts) {
                if (part === "data: [DONE]") continue;
                const chunk = JSON.parse(part.slice("data: ".length));
                if (chunk.choices[0]?.finish_reason != null || chunk.usage != null) chunks.push(chunk);
                // A tenth of the way in (~4 characters a token); events carry several tokens each when they come fast.
                streamed += chunk.choices[0]?.text?.length ?? 0;
                if (rssAfterWarmUp === 0 && streamed >= 4000) rssAfterWarmUp = process.memoryUsage().rss;
            }
        }
        const rssAtEnd = process.memoryUsage().rss;

        const finish = chunks.find((chunk) => chunk.choices[0]?.finish_reason != null);
        const usage = chunks.at(-1).usage;
        expect(finish.choices[0].finish_reason).toBe("length");
        expect(usage.completion_tokens).toBe(10_000);
        // 10,005 tokens through a window of 511 cells: at least 9,494 were erased.
        expect(usage.dropped_context_tokens).toBeGreaterThanOrEqual(10_000 + usage.prompt_tokens - 511);
        expect(usage.truncated_prompt_tokens).toBe(0);
        expect(rssAfterWarmUp).toBeGreaterThan(0);
        expect(rssAtEnd - rssAfterWarmUp).toBeLessThan(20 * 1024 * 1024);

        const held = server.runtime.sequences[0]!.cachedTokens;
        expect(held.length).toBeLessThan(512);
        expect(held.slice(0, 4)).toEqual(sinks);
    }, 60_000);

    it("keeps a chat's system prompt as the sinks", async () => {
        const messages = [
            {role: "system", content: "You are a storyteller who tells stories about cats and dogs."},
            {role: "user", content: "Tell me a story."}
        ];
        await post(server, "/v1/chat/completions", {messages, max_tokens: 1});
        const rendered = server.runtime.sequences[0]!.cachedTokens.slice();

        const {status, body} = await post(server, "/v1/chat/completions", {messages, max_tokens: 1500, context_overflow: "slide"});
        expect(status).toBe(200);
        expect(body.usage.completion_tokens).toBe(1500);
        expect(body.usage.dropped_context_tokens).toBeGreaterThan(0);
        const held = server.runtime.sequences[0]!.cachedTokens;
        // BOS, "[INST] <<SYS>>", the system text and "<</SYS>>": more than the 4 default sinks.
        const system = rendered.findIndex((token, index) => token !== held[index]);
        expect(system).toBeGreaterThan(15);
        expect(system).toBeLessThan(rendered.length);
    });

    it("truncates a prompt that does not fit, then slides", async () => {
        const {status, body} = await post(server, "/v1/completions", {prompt: longPrompt, max_tokens: 200, context_overflow: "slide"});
        expect(status).toBe(200);
        expect(body.usage.prompt_tokens).toBe(512 - 128);
        expect(body.usage.truncated_prompt_tokens).toBeGreaterThan(0);
        expect(body.usage.completion_tokens).toBe(200);
        expect(body.choices[0].finish_reason).toBe("length");
    });
});

describe("context_overflow: error (the default)", () => {
    it("rejects a prompt longer than the context with both counts", async () => {
        const {status, body} = await post(server, "/v1/completions", {prompt: longPrompt, max_tokens: 8});
        expect(status).toBe(400);
        expect(body.error.code).toBe("context_length_exceeded");
        expect(body.error.message).toMatch(/512 tokens/);
    });

    it.skipIf(!isStories260K)("refuses max_tokens that could never fit, with the numbers", async () => {
        const {status, body} = await post(server, "/v1/completions", {prompt: "Once upon a time", max_tokens: 2000});
        expect(status).toBe(400);
        expect(body.error).toMatchObject({code: "context_length_exceeded", param: "max_tokens"});
        expect(body.error.message).toContain("2005 were requested (5 in the prompt, 2000 for the completion)");
    });

    it("without max_tokens, stops with length when the sequence is full, and reports no overflow fields", async () => {
        const {status, body} = await post(server, "/v1/chat/completions", {messages: [{role: "user", content: "Tell me a long story"}]});
        expect(status).toBe(200);
        expect(body.choices[0].finish_reason).toBe("length");
        expect(body.usage.prompt_tokens + body.usage.completion_tokens).toBe(512);
        expect(body.usage).not.toHaveProperty("truncated_prompt_tokens");
    });
});

describe("context_overflow: truncate", () => {
    it("answers an over-long prompt with 200, keeping room for max_tokens", async () => {
        const total = server.runtime.countTokens(longPrompt) + 1;
        const {status, body} = await post(server, "/v1/completions", {prompt: longPrompt, max_tokens: 40, context_overflow: "truncate"});
        expect(status).toBe(200);
        expect(body.usage.prompt_tokens).toBe(512 - 40);
        expect(body.usage.truncated_prompt_tokens).toBe(total - (512 - 40));
        expect(body.usage.completion_tokens).toBe(40);
        expect(body.usage.dropped_context_tokens).toBe(0);
    });

    it("still ends with length when the context is full", async () => {
        const {body} = await post(server, "/v1/completions", {prompt: longPrompt, max_tokens: 1000, context_overflow: "truncate"});
        expect(body.choices[0].finish_reason).toBe("length");
        expect(body.usage.prompt_tokens).toBe(512 - 128);
        expect(body.usage.completion_tokens).toBe(128);
    });

    it("is the server default when configured, and a request can ask for error instead", async () => {
        const chat = {messages: [{role: "user", content: longPrompt}], max_tokens: 16};
        const truncated = await post(truncating, "/v1/chat/completions", chat);
        expect(truncated.status).toBe(200);
        expect(truncated.body.usage.prompt_tokens).toBeLessThanOrEqual(512);
        expect(truncated.body.usage.truncated_prompt_tokens).toBeGreaterThan(0);

        const refused = await post(truncating, "/v1/chat/completions", {...chat, context_overflow: "error"});
        expect(refused.status).toBe(400);
        expect(refused.body.error.param).toBe("messages");
    });

    it("rejects an unknown policy naming the field", async () => {
        const {status, body} = await post(server, "/v1/completions", {prompt: "Hi", context_overflow: "wrap"});
        expect(status).toBe(400);
        expect(body.error.param).toBe("context_overflow");
    });
});
