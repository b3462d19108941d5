import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {startTestServer, type TestServer} from "./helpers/server.js";

let server: TestServer;
beforeAll(async () => {
    server = await startTestServer({parallel: 2, contextSize: 512});
});
afterAll(() => server?.stop());

async function complete(body: Record<string, unknown>) {
    const started = performance.now();
    const response = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({model: server.modelId, prompt: "Once upon a time", temperature: 0, ...body})
    });
    return {status: response.status, headers: response.headers, body: await response.json() as Record<string, any>, ms: performance.now() - started};
}

describe("engine limits (what the power governor sets)", () => {
    it("paces each stream to the tokens/s cap, and lifting the cap restores full speed", async () => {
        server.runtime.setLimits({tokensPerSecond: 50});
        const paced = await complete({max_tokens: 21});
        expect(paced.body.usage.completion_tokens).toBe(21);
        // 20 intervals at 50 tok/s: at least 400 ms (the model alone needs ~15 ms).
        expect(paced.ms).toBeGreaterThan(380);
        expect(paced.body.timings.predicted_per_second).toBeLessThan(55);

        server.runtime.setLimits({});
        const free = await complete({max_tokens: 21});
        expect(free.ms).toBeLessThan(200);
        expect(free.body.choices[0].text).toBe(paced.body.choices[0].text);
    });

    it("caps max_tokens", async () => {
        server.runtime.setLimits({maxTokens: 5});
        const capped = await complete({max_tokens: 50});
        server.runtime.setLimits({});
        expect(capped.body.usage.completion_tokens).toBe(5);
        expect(capped.body.choices[0].finish_reason).toBe("length");
    });

    it("runs at most maxConcurrent requests at once", async () => {
        server.runtime.setLimits({maxConcurrent: 1, tokensPerSecond: 200});
        let most = 0;
        const watcher = setInterval(() => (most = Math.max(most, server.runtime.health().slots!.running)), 2);
        const results = await Promise.all([complete({max_tokens: 20}), complete({max_tokens: 20}), complete({max_tokens: 20})]);
        clearInterval(watcher);
        server.runtime.setLimits({});
        expect(results.map((result) => result.status)).toEqual([200, 200, 200]);
        expect(most).toBe(1);
    });

    it("refuses new requests with 503 and Retry-After while streams in flight finish", async () => {
        server.runtime.setLimits({tokensPerSecond: 100});
        const inFlight = complete({max_tokens: 30});
        await new Promise((resolve) => setTimeout(resolve, 50));
        server.runtime.setLimits({tokensPerSecond: 100, refuse: {message: "The device is too hot; retry later.", retryAfterSeconds: 30}});
        const refused = await complete({max_tokens: 5});
        expect(refused.status).toBe(503);
        expect(refused.headers.get("retry-after")).toBe("30");
        expect(refused.body.error).toMatchObject({code: "throttled", message: "The device is too hot; retry later."});
        const finished = await inFlight;
        server.runtime.setLimits({});
        expect(finished.status).toBe(200);
        expect(finished.body.usage.completion_tokens).toBe(30);
        expect((await complete({max_tokens: 2})).status).toBe(200);
    });

    it("lowers the decode threads live and restores them", async () => {
        const backend = server.runtime.backend as unknown as {llama: {maxThreads: number}; setMaxThreads(threads: number): void};
        const calls: number[] = [];
        const original = backend.setMaxThreads.bind(backend);
        backend.setMaxThreads = (threads) => {
            calls.push(threads);
            original(threads);
        };
        server.runtime.setLimits({threads: 1});
        expect(backend.llama.maxThreads).toBe(1);
        server.runtime.setLimits({});
        backend.setMaxThreads = original;
        expect(calls).toEqual([1, server.runtime.health().model!.threads]);
        expect(server.runtime.health().limits).toEqual({});
    });
});
