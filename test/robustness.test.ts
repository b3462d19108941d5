import http from "node:http";
import {afterAll, beforeAll, describe, expect, it, vi} from "vitest";
import OpenAI from "openai";
import {startTestServer, type TestServer} from "./helpers/server.js";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {Runtime} from "../src/runtime/runtime.js";
import {startServer} from "../src/api/server.js";

let server: TestServer;

beforeAll(async () => {
    // One sequence and a queue of one make overload easy to reach; 2048 tokens of context make
    // a long answer take over a second on the test model.
    server = await startTestServer({parallel: 1, maxQueued: 1, contextSize: 2048, maxBodyBytes: 64 * 1024});
});
afterAll(() => server?.stop());

async function post(path: string, body: string | object, headers: Record<string, string> = {}) {
    const response = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: {"content-type": "application/json", ...headers},
        body: typeof body === "string" ? body : JSON.stringify(body)
    });
    return {status: response.status, headers: response.headers, body: await response.json() as {error: Record<string, unknown>}};
}

function expectOpenAIError(body: {error: Record<string, unknown>}) {
    expect(Object.keys(body.error).sort()).toEqual(["code", "message", "param", "type"]);
    expect(typeof body.error.message).toBe("string");
}

const chat = (extra: object = {}) => ({model: "stories260K", messages: [{role: "user", content: "Hi"}], max_tokens: 4, ...extra});

async function waitForFreeSlots(timeoutMs = 2000) {
    const start = performance.now();
    while (performance.now() - start < timeoutMs) {
        const slots = server.runtime.health().slots!;
        if (slots.free === slots.total && slots.queued === 0)
            return performance.now() - start;
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error("sequences were not freed");
}

describe("bad input gets an OpenAI error with the right status", () => {
    const cases: [string, string | object, number, string | null][] = [
        ["malformed JSON", "{\"model\": ", 400, null],
        ["empty body", "", 400, null],
        ["a JSON array", "[]", 400, null],
        ["missing messages", {model: "stories260K"}, 400, "messages"],
        ["empty messages", chat({messages: []}), 400, "messages"],
        ["unknown role", chat({messages: [{role: "wizard", content: "x"}]}), 400, "messages[0].role"],
        ["temperature out of range", chat({temperature: 9}), 400, "temperature"],
        ["max_tokens zero", chat({max_tokens: 0}), 400, "max_tokens"],
        ["max_tokens not an integer", chat({max_tokens: 1.5}), 400, "max_tokens"],
        ["stop of the wrong type", chat({stop: 42}), 400, "stop"],
        ["n above the limit", chat({n: 17}), 400, "n"],
        ["image content", chat({messages: [{role: "user", content: [{type: "image_url", image_url: {url: "x"}}]}]}), 400, "messages[0].content[0]"],
        ["bad response_format", chat({response_format: {type: "xml"}}), 400, "response_format.type"],
        ["a schema keyword no grammar can enforce", chat({response_format: {type: "json_schema", json_schema: {name: "x", schema: {type: "string", pattern: "^a$"}}}}), 400, "response_format"],
        ["unknown model", chat({model: "gpt-4o"}), 404, "model"]
    ];
    it.each(cases)("%s", async (_name, body, status, param) => {
        const response = await post("/v1/chat/completions", body);
        expect(response.status).toBe(status);
        expectOpenAIError(response.body);
        expect(response.body.error.param).toBe(param);
    });

    it("a body over the size limit is a 413", async () => {
        const response = await post("/v1/chat/completions", chat({messages: [{role: "user", content: "x".repeat(100_000)}]}));
        expect(response.status).toBe(413);
        expectOpenAIError(response.body);
    });

    it("a chunked body (no Content-Length) is counted as it arrives: over the limit a 413, under it served", async () => {
        const send = (body: string) => new Promise<{status: number; body: {error?: {code: string}}}>((resolve, reject) => {
            const request = http.request(`${server.url}/v1/completions`, {method: "POST", headers: {"content-type": "application/json", "transfer-encoding": "chunked"}}, (response) => {
                let text = "";
                response.setEncoding("utf8").on("data", (chunk: string) => (text += chunk)).on("end", () => resolve({status: response.statusCode!, body: JSON.parse(text)}));
            });
            request.on("error", reject);
            // Several chunks, as a streaming client would send them.
            for (let start = 0; start < body.length; start += 8192) request.write(body.slice(start, start + 8192));
            request.end();
        });
        const big = await send(JSON.stringify({model: "stories260K", prompt: "x".repeat(100_000), max_tokens: 1}));
        expect(big.status).toBe(413);
        expect(big.body.error?.code).toBe("request_too_large");
        const small = await send(JSON.stringify({model: "stories260K", prompt: "Once upon a time", max_tokens: 2}));
        expect(small.status).toBe(200);
    });

    it("a prompt longer than the context is a 400 that gives the token counts", async () => {
        const prompt = "Once upon a time there was a cat. ".repeat(300);
        const tokens = server.runtime.countTokens(prompt);
        const response = await post("/v1/completions", {model: "stories260K", prompt});
        expect(response.status).toBe(400);
        expect(response.body.error.code).toBe("context_length_exceeded");
        expect(response.body.error.message).toContain("2048");
        expect(response.body.error.message).toContain(String(tokens + 1));
    });

    it("an unknown path is a 404 in the same format", async () => {
        const response = await post("/v1/nope", {});
        expect(response.status).toBe(404);
        expectOpenAIError(response.body);
    });
});

describe("concurrency, overload and disconnects", () => {
    const long = {model: "stories260K", prompt: "Once upon a time", max_tokens: 1000, temperature: 0};

    it("a full queue answers 429 with Retry-After; admitted requests complete", async () => {
        const running = post("/v1/completions", long);
        await new Promise((resolve) => setTimeout(resolve, 50));
        const queued = post("/v1/completions", {...long, max_tokens: 5});
        await new Promise((resolve) => setTimeout(resolve, 20));
        const refused = await post("/v1/completions", {...long, max_tokens: 5});
        expect(refused.status).toBe(429);
        expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
        expectOpenAIError(refused.body);
        expect(refused.body.error.type).toBe("rate_limit_error");
        expect((await running).status).toBe(200);
        expect((await queued).status).toBe(200);
    });

    it("a client that disconnects mid-stream frees its sequence at once", async () => {
        const controller = new AbortController();
        const response = await fetch(`${server.url}/v1/completions`, {
            method: "POST", body: JSON.stringify({...long, stream: true}), signal: controller.signal
        });
        const reader = response.body!.getReader();
        await reader.read();
        await reader.read();
        expect(server.runtime.health().slots!.running).toBe(1);
        controller.abort();
        // 1000 tokens take over a second here; being free within ~0.2 s proves decoding stopped.
        expect(await waitForFreeSlots(1000)).toBeLessThan(250);
        const next = await post("/v1/completions", {...long, max_tokens: 3});
        expect(next.status).toBe(200);
    });

    it("a client that leaves while queued never takes a sequence", async () => {
        const running = post("/v1/completions", {...long, max_tokens: 500});
        // Polled, not slept: on a loaded machine a request can take more than a fixed 30 ms to arrive.
        const slots = () => server.runtime.health().slots!;
        await vi.waitFor(() => expect(slots().running).toBe(1), {timeout: 2000, interval: 2});
        const controller = new AbortController();
        const queued = fetch(`${server.url}/v1/completions`, {method: "POST", body: JSON.stringify(long), signal: controller.signal}).catch((error) => error);
        await vi.waitFor(() => expect(slots().queued).toBe(1), {timeout: 2000, interval: 2});
        expect(slots().running).toBe(1);
        controller.abort();
        await queued;
        await vi.waitFor(() => expect(slots().queued).toBe(0), {timeout: 2000, interval: 2});
        expect((await running).status).toBe(200);
        await waitForFreeSlots();
    });

    it("bad requests in the middle of a stream do not disturb it", async () => {
        const client = new OpenAI({baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0});
        const request = {model: "stories260K", prompt: "Once upon a time", max_tokens: 300, temperature: 0};
        const expected = (await client.completions.create(request)).choices[0]!.text;

        const stream = await client.completions.create({...request, stream: true});
        let text = "";
        let disturbed = 0;
        for await (const chunk of stream) {
            text += chunk.choices[0]?.text ?? "";
            if (disturbed++ < 5)
                expect((await post("/v1/completions", "{{{")).status).toBe(400);
        }
        expect(text).toBe(expected);
    });
});

describe("before the model is loaded", () => {
    it("answers 503 with Retry-After and /health says loading", async () => {
        const runtime = new Runtime(await LlamaCppBackend.create({gpu: false}));
        const loading = await startServer({runtime, host: "127.0.0.1", port: 0, maxBodyBytes: 1024 * 1024, maxWsFrameBytes: 1024 * 1024});
        try {
            const response = await fetch(`${loading.url}/v1/chat/completions`, {method: "POST", body: JSON.stringify(chat())});
            expect(response.status).toBe(503);
            expect(response.headers.get("retry-after")).not.toBeNull();
            expectOpenAIError(await response.json() as {error: Record<string, unknown>});
            const health = await fetch(`${loading.url}/health`);
            expect(health.status).toBe(503);
        } finally {
            await loading.close();
            await runtime.dispose();
        }
    });
});

describe("shutting down", () => {
    it("lets a stream in flight finish before the model is freed, and refuses new work", async () => {
        const other = await startTestServer({parallel: 1, contextSize: 2048});
        try {
            const response = await fetch(`${other.url}/v1/completions`, {
                method: "POST", body: JSON.stringify({model: "stories260K", prompt: "Once upon a time", max_tokens: 300, stream: true})
            });
            const body = response.text();
            await new Promise((resolve) => setTimeout(resolve, 20));
            expect(other.runtime.activeGenerations).toBe(1);
            const disposed = other.runtime.dispose();
            const refused = await fetch(`${other.url}/v1/completions`, {method: "POST", body: JSON.stringify({model: "stories260K", prompt: "x"})});
            expect(refused.status).toBe(503);
            await disposed;
            const events = await body;
            expect(events).not.toContain("\"error\"");
            expect(events).toContain("\"finish_reason\":\"length\"");
            expect(other.runtime.health().status).toBe("closed");
        } finally {
            await other.close();
        }
    });
});
