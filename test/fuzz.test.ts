import {afterAll, beforeAll, describe, expect, it} from "vitest";
import fc from "fast-check";
import {WebSocket} from "ws";
import {startTestServer, type TestServer} from "./helpers/server.js";
import {CLIENT_ERROR_STATUSES, expectCompletionObject, expectOpenAIErrorBody, expectSseStream} from "./helpers/openai-shapes.js";
import {PowerService} from "../src/power/service.js";
import {repoRoot} from "./helpers/model.js";

/**
 * Property-based fuzzing of every JSON endpoint and the WebSocket with fast-check: malformed
 * JSON, wrong types, out-of-range and hostile values mixed into otherwise valid bodies. Every
 * answer must be a well-formed OpenAI error (never a 500) or a valid result; the server must
 * keep answering and nothing may reject unhandled. Case counts are in docs/reliability.md.
 *
 * Bodies go out in concurrent batches (one fast-check run = one batch), so a failure shrinks to
 * the smallest batch that still fails.
 */

const ADMIN_TOKEN = "fuzz-admin-token-0123456789";
/** Requests sent at once per run. */
const BATCH = 10;
/** fast-check runs per HTTP endpoint (× BATCH bodies each); WS runs send WS_BATCH frames each. */
const HTTP_RUNS = Number(process.env.EDGE_LLM_FUZZ_HTTP_RUNS ?? 300);
const WS_RUNS = Number(process.env.EDGE_LLM_FUZZ_WS_RUNS ?? 300);
const WS_BATCH = 10;
/** A fixed seed keeps CI reproducible; set EDGE_LLM_FUZZ_SEED to explore others. */
const ANSWER_TIMEOUT_MS = 10_000;
const SEED = Number(process.env.EDGE_LLM_FUZZ_SEED ?? 20251125);

// ── values ─────────────────────────────────────────────────────────────────────────────────

/** Values that break naive code: extremes, wrong types, odd strings, prototype keys, nesting. */
const hostile: fc.Arbitrary<unknown> = fc.oneof(
    fc.constantFrom(
        null, true, false, 0, -1, 1, -0, 0.5, 1.5, 2 ** 31, -(2 ** 31), 2 ** 53 + 2, 1e308, -1e308, 5e-324,
        "", " ", "\u0000", "\ud800", "\uffff", "💥".repeat(50), "a".repeat(3000), "<|im_end|>", "</s>", "{{", "%s%n",
        [], {}, [[[[]]]], [null], {__proto__: null, constructor: {prototype: {polluted: true}}}, JSON.parse("{\"__proto__\":{\"polluted\":1}}")
    ),
    fc.jsonValue({maxDepth: 3}),
    fc.string({maxLength: 30}),
    fc.integer(),
    fc.double({noNaN: true, noDefaultInfinity: true})
);

/** Mostly `valid`, now and then something hostile: a body has several fields, so most bodies stay valid. */
const mostly = <T>(valid: fc.Arbitrary<T>, hostileWeight = 1) => fc.oneof({weight: 40, arbitrary: valid as fc.Arbitrary<unknown>}, {weight: hostileWeight, arbitrary: hostile});

/** Mostly absent, as `undefined` (dropped by JSON.stringify). */
const rarely = <T>(value: fc.Arbitrary<T>) => fc.oneof({weight: 4, arbitrary: fc.constant(undefined)}, {weight: 1, arbitrary: value as fc.Arbitrary<unknown>});

const contentPart = fc.oneof(
    fc.record({type: fc.constant("text"), text: fc.string({maxLength: 20})}),
    fc.record({type: fc.constantFrom("image_url", "input_audio", "text", "file"), image_url: hostile}, {requiredKeys: ["type"]}),
    hostile
);

const message = fc.record({
    role: mostly(fc.constantFrom("system", "developer", "user", "assistant", "tool")),
    content: mostly(fc.oneof(fc.string({maxLength: 40}), fc.array(contentPart, {maxLength: 3}))),
    name: mostly(fc.string({maxLength: 10}))
}, {requiredKeys: ["role"]});

const model = fc.oneof({weight: 20, arbitrary: fc.constantFrom("stories260K", "default", "stories260K.gguf")}, {weight: 1, arbitrary: fc.constantFrom("gpt-4o", "", "../../etc/passwd")}, {weight: 1, arbitrary: hostile});
const smallMaxTokens = fc.integer({min: 1, max: 4});

const tool = fc.record({
    type: mostly(fc.constant("function")),
    function: mostly(fc.record({
        name: mostly(fc.constantFrom("get_weather", "search", "x-y_z")),
        description: mostly(fc.string({maxLength: 20})),
        parameters: mostly(fc.constantFrom(
            {type: "object", properties: {city: {type: "string"}}, required: ["city"]},
            {type: "object", properties: {n: {type: "integer", minimum: 0}, tags: {type: "array", items: {type: "string"}}}},
            {}
        ))
    }, {requiredKeys: ["name"]}))
}, {requiredKeys: ["type", "function"]});

/** Optional fields both generation endpoints share, valid or not. */
const samplingFields = {
    stream: mostly(fc.boolean()),
    stream_options: mostly(fc.record({include_usage: fc.boolean()})),
    temperature: mostly(fc.double({min: 0, max: 2, noNaN: true})),
    top_p: mostly(fc.double({min: 0, max: 1, noNaN: true})),
    top_k: mostly(fc.integer({min: 0, max: 100})),
    min_p: mostly(fc.double({min: 0, max: 1, noNaN: true})),
    seed: mostly(fc.integer()),
    stop: mostly(fc.oneof(fc.string({maxLength: 5}), fc.array(fc.string({maxLength: 5}), {maxLength: 20}))),
    presence_penalty: mostly(fc.double({min: -2, max: 2, noNaN: true})),
    frequency_penalty: mostly(fc.double({min: -2, max: 2, noNaN: true})),
    repeat_penalty: mostly(fc.double({min: 0.5, max: 2, noNaN: true})),
    response_format: fc.oneof(
        {weight: 20, arbitrary: fc.constantFrom({type: "text"}, {type: "json_object"}, {type: "json_schema", json_schema: {name: "x", schema: {type: "object", properties: {a: {type: "integer"}}}}})},
        {weight: 1, arbitrary: fc.record({type: fc.constantFrom("json_schema", "xml"), json_schema: fc.record({name: hostile, schema: hostile})})},
        {weight: 1, arbitrary: hostile}
    ),
    // Not "slide": a sliding request with a huge max_tokens (which edits produce) rightly runs for days.
    context_overflow: mostly(fc.constantFrom("error", "truncate")),
    speculative: mostly(fc.oneof(fc.boolean(), fc.constantFrom("prompt-lookup", "draft"))),
    session: mostly(fc.string({minLength: 1, maxLength: 20})),
    user: mostly(fc.string({maxLength: 10})),
    n: mostly(fc.integer({min: 1, max: 2})),
    logprobs: mostly(fc.constantFrom(true, true, false)),
    // Rarely: each needs another field (logprobs, tools) to be valid.
    top_logprobs: rarely(mostly(fc.integer({min: 0, max: 5}))),
    tools: mostly(fc.array(tool, {maxLength: 2})),
    tool_choice: rarely(mostly(fc.oneof(fc.constantFrom("auto", "none", "required"), fc.record({type: fc.constant("function"), function: fc.record({name: fc.constantFrom("get_weather", "nope")})})))),
    parallel_tool_calls: mostly(fc.boolean())
};

const chatBody = fc.record({model, messages: mostly(fc.array(message, {minLength: 1, maxLength: 4})), max_tokens: mostly(smallMaxTokens), ...samplingFields},
    {requiredKeys: ["model", "messages", "max_tokens"]});
const completionBody = fc.record({
    model,
    prompt: fc.oneof(
        {weight: 20, arbitrary: fc.oneof(fc.string({maxLength: 60}), fc.tuple(fc.string({maxLength: 30})))},
        {weight: 1, arbitrary: fc.oneof(fc.array(fc.string({maxLength: 10}), {maxLength: 3}), fc.array(fc.integer({min: 0, max: 600}), {maxLength: 5}), hostile)}
    ),
    max_tokens: mostly(smallMaxTokens),
    echo: mostly(fc.boolean()),
    suffix: mostly(fc.constant(null)),
    ...samplingFields,
    logprobs: mostly(fc.integer({min: 0, max: 5})),
    tools: fc.constant(undefined),
    tool_choice: fc.constant(undefined),
    parallel_tool_calls: fc.constant(undefined),
    top_logprobs: fc.constant(undefined)
}, {requiredKeys: ["model", "prompt", "max_tokens"]});
const text = fc.oneof(fc.string({maxLength: 40}), fc.string({unit: "grapheme", maxLength: 20}));
const embeddingsBody = fc.record({
    model,
    input: fc.oneof(text, fc.array(text, {maxLength: 4}), fc.array(fc.integer({min: 0, max: 600}), {maxLength: 8}), fc.array(fc.array(fc.integer({min: -5, max: 600}), {maxLength: 4}), {maxLength: 3})),
    encoding_format: mostly(fc.constantFrom("float", "base64")),
    dimensions: mostly(fc.integer({min: 1, max: 100}))
}, {requiredKeys: ["model", "input"]});
const tokenizeBody = fc.record({model, content: mostly(text), add_special: mostly(fc.boolean()), with_pieces: mostly(fc.boolean())}, {requiredKeys: ["content"]});
const detokenizeBody = fc.record({model, tokens: mostly(fc.array(fc.integer({min: -10, max: 2 ** 31}), {maxLength: 10}))}, {requiredKeys: ["tokens"]});
const powerOverrideBody = fc.record({level: mostly(fc.constantFrom(null, "nominal", "NOMINAL", "hot"), 10)});

/** A body as sent: valid-ish objects (most), with random keys overwritten or added, or any JSON, or raw bytes. */
function bodies(valid: fc.Arbitrary<Record<string, unknown>>, keys: readonly string[]): fc.Arbitrary<string> {
    const mutated = fc.tuple(valid, fc.oneof(fc.constant([] as [string, unknown][]), fc.array(fc.tuple(fc.oneof(fc.constantFrom(...keys), fc.string({maxLength: 8})), fc.oneof(hostile, fc.constant(undefined))), {minLength: 1, maxLength: 3})))
        .map(([body, edits]) => {
            const copy: Record<string, unknown> = {...body};
            for (const [key, value] of edits) copy[key] = value;
            return JSON.stringify(copy);
        });
    const raw = fc.oneof(
        fc.string({unit: "binary", maxLength: 200}),
        fc.jsonValue({maxDepth: 4}).map((value) => JSON.stringify(value) ?? "null"),
        valid.chain((body) => {
            const text = JSON.stringify(body);
            return fc.integer({min: 0, max: text.length}).map((cut) => text.slice(0, cut));
        }),
        valid.map((body) => `${JSON.stringify(body)}garbage`),
        valid.map((body) => `\ufeff${JSON.stringify(body)}`),
        fc.integer({min: 1000, max: 20_000}).map((depth) => "[".repeat(depth) + "]".repeat(depth)),
        fc.integer({min: 100, max: 3000}).map((depth) => `{"model":"stories260K","messages":${"[".repeat(depth)}${"]".repeat(depth)}}`),
        fc.constantFrom("", " ", "null", "1e999999", "{\"model\":\"stories260K\",\"model\":1}", "{\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}],\"model\":\"stories260K\",\"max_tokens\":2}")
    );
    return fc.oneof({arbitrary: mutated, weight: 6}, {arbitrary: raw, weight: 3});
}

// ── endpoints ──────────────────────────────────────────────────────────────────────────────

interface FuzzEndpoint {
    path: string;
    body: fc.Arbitrary<string>;
    headers?: Record<string, string>;
    /** fast-check runs (× BATCH bodies); default HTTP_RUNS. */
    runs?: number;
    /** Checks a 200 answer. */
    checkOk(response: Response, context: string): Promise<void>;
}

const generation = (kind: "chat" | "completion") => async (response: Response, context: string) => {
    const text = await response.text();
    if ((response.headers.get("content-type") ?? "").startsWith("text/event-stream")) expectSseStream(text, kind, context);
    else expectCompletionObject(JSON.parse(text), kind, context);
};

/** Every JSON endpoint; a new one is fuzzed by adding an entry. */
const endpoints: FuzzEndpoint[] = [
    {path: "/v1/chat/completions", body: bodies(chatBody, Object.keys({model: 1, messages: 1, max_tokens: 1, max_completion_tokens: 1, ...samplingFields})), checkOk: generation("chat")},
    {path: "/v1/completions", body: bodies(completionBody, Object.keys({model: 1, prompt: 1, max_tokens: 1, echo: 1, ...samplingFields})), checkOk: generation("completion")},
    {
        path: "/v1/embeddings", body: bodies(embeddingsBody, ["model", "input", "encoding_format", "dimensions"]), runs: Math.ceil(HTTP_RUNS / 2),
        checkOk: async (response, context) => {
            const body = await response.json() as {object: string; data: {object: string; index: number; embedding: number[] | string}[]; usage: {prompt_tokens: number}};
            expect(body.object, context).toBe("list");
            expect(body.data.length, context).toBeGreaterThan(0);
            for (const [index, item] of body.data.entries()) {
                expect(item.index, context).toBe(index);
                if (typeof item.embedding !== "string") expect(item.embedding.every(Number.isFinite), context).toBe(true);
            }
            expect(body.usage.prompt_tokens, context).toBeGreaterThanOrEqual(0);
        }
    },
    {
        path: "/tokenize", body: bodies(tokenizeBody, ["model", "content", "add_special", "with_pieces"]), runs: Math.ceil(HTTP_RUNS / 2),
        checkOk: async (response, context) => expect(Array.isArray((await response.json() as {tokens: unknown}).tokens), context).toBe(true)
    },
    {
        path: "/detokenize", body: bodies(detokenizeBody, ["model", "tokens"]), runs: Math.ceil(HTTP_RUNS / 2),
        checkOk: async (response, context) => expect((await response.json() as {content: unknown}).content, context).toBeTypeOf("string")
    },
    {
        path: "/admin/power",
        body: bodies(powerOverrideBody, ["level"]),
        headers: {authorization: `Bearer ${ADMIN_TOKEN}`},
        checkOk: async (response, context) => expect((await response.json() as {level: string}).level, context).toBeTypeOf("string")
    }
];

// ── the run ────────────────────────────────────────────────────────────────────────────────

let server: TestServer;
const unhandled: unknown[] = [];
const recordUnhandled = (reason: unknown) => unhandled.push(reason);
const tried = {http: 0, ws: 0};
/** Answers per endpoint and status, e.g. {"/v1/completions": {200: 812, 400: 2188}}. */
const statuses: Record<string, Record<number, number>> = {};

beforeAll(async () => {
    process.on("unhandledRejection", recordUnhandled);
    process.on("uncaughtException", recordUnhandled);
    server = await startTestServer({
        parallel: 2,
        // A small context bounds any body that turns out valid and asks for many tokens.
        contextSize: 128,
        maxQueued: 256,
        maxBodyBytes: 64 * 1024,
        maxWsFrameBytes: 16 * 1024,
        adminToken: ADMIN_TOKEN,
        power: (runtime) => new PowerService({runtime, sensorRoot: `${repoRoot}/test/fixtures/power/sysfs-empty`, pollIntervalMs: 60_000})
    });
});
afterAll(async () => {
    process.off("unhandledRejection", recordUnhandled);
    process.off("uncaughtException", recordUnhandled);
    await server?.stop();
    if (process.env.EDGE_LLM_FUZZ_DEBUG) console.log([...messages].sort((a, b) => b[1] - a[1]).slice(0, 30));
    console.log(`fuzz: ${tried.http} HTTP bodies, ${tried.ws} WebSocket frames; HTTP answers by status: ${JSON.stringify(statuses)}`);
});

async function send(endpoint: FuzzEndpoint, body: string) {
    const context = `${endpoint.path} ${body.slice(0, 4000)}`;
    try {
        const response = await fetch(`${server.url}${endpoint.path}`, {
            method: "POST",
            headers: {"content-type": "application/json", ...endpoint.headers},
            body,
            // Every body here is answered within milliseconds; one that hangs is a failure, shown with its body.
            signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS)
        });
        tried.http++;
        const counts = statuses[endpoint.path] ??= {};
        counts[response.status] = (counts[response.status] ?? 0) + 1;
        if (response.status === 200) return await endpoint.checkOk(response, context);
        expect(CLIENT_ERROR_STATUSES.has(response.status), `${response.status}: ${context}`).toBe(true);
        const answer = await response.json() as {error: {message: string}};
        if (process.env.EDGE_LLM_FUZZ_DEBUG) messages.set(answer.error.message.slice(0, 60), (messages.get(answer.error.message.slice(0, 60)) ?? 0) + 1);
        expectOpenAIErrorBody(answer, context);
    } catch (error) {
        if ((error as Error).name === "TimeoutError")
            throw new Error(`no complete answer within ${ANSWER_TIMEOUT_MS} ms: ${context}`);
        throw error;
    }
}
const messages = new Map<string, number>();

describe("fuzzing", () => {
    it.each(endpoints.map((endpoint) => [endpoint.path, endpoint] as const))("%s: every answer is a valid result or an OpenAI error", async (_path, endpoint) => {
        await fc.assert(
            fc.asyncProperty(fc.array(endpoint.body, {minLength: BATCH, maxLength: BATCH}), async (batch) => {
                await Promise.all(batch.map((body) => send(endpoint, body)));
            }),
            {numRuns: endpoint.runs ?? HTTP_RUNS, seed: SEED, endOnFailure: true}
        );
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
        // Not only rejections: a good share of the bodies were valid and answered.
        expect(statuses[endpoint.path]![200] ?? 0).toBeGreaterThan((endpoint.runs ?? HTTP_RUNS) * BATCH / 50);
    }, 120_000);

    it("the WebSocket: every frame gets well-formed answers, every request exactly one terminal frame", async () => {
        const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/v1/ws`);
        await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
        const terminals = new Map<string, number>();
        const waiting = new Map<string, () => void>();
        ws.on("message", (data, isBinary) => {
            expect(isBinary).toBe(false);
            const frame = JSON.parse(data.toString()) as {type: string; id?: string | null; status?: number; error?: unknown; finish_reason?: string};
            expect(["delta", "done", "error", "pong", "power"]).toContain(frame.type);
            if (frame.type === "error") {
                expect(CLIENT_ERROR_STATUSES.has(frame.status!), JSON.stringify(frame)).toBe(true);
                expectOpenAIErrorBody({error: frame.error});
            }
            if (frame.type === "done") expect(["stop", "length", "cancelled"]).toContain(frame.finish_reason);
            if ((frame.type === "done" || frame.type === "error") && typeof frame.id === "string") {
                terminals.set(frame.id, (terminals.get(frame.id) ?? 0) + 1);
                waiting.get(frame.id)?.();
            }
        });
        const closed = new Promise((resolve) => ws.once("close", resolve));

        let next = 0;
        /** A frame with a fresh id whose answer the test waits for, or any other text or binary frame. */
        const frame = fc.oneof(
            {weight: 6, arbitrary: fc.tuple(fc.constantFrom("chat", "completion"), fc.oneof(chatBody, completionBody).map((body) => ({body})), fc.array(fc.tuple(fc.constantFrom("body", "stream", "extra"), hostile), {maxLength: 2}))
                .map(([type, {body}, edits]) => ({tracked: true, text: JSON.stringify({type, body, ...Object.fromEntries(edits)})}))},
            {weight: 1, arbitrary: fc.oneof(
                fc.record({type: fc.oneof(fc.constantFrom("chat", "completion", "cancel", "ping", "nope"), hostile), id: hostile, body: hostile}, {requiredKeys: []}).map((value) => JSON.stringify(value)),
                fc.string({unit: "binary", maxLength: 100}),
                fc.jsonValue({maxDepth: 3}).map((value) => JSON.stringify(value) ?? "null")
            ).map((text) => ({tracked: false, text}))},
            {weight: 1, arbitrary: fc.uint8Array({maxLength: 64}).map((bytes) => ({tracked: false, binary: Buffer.from(bytes)}))}
        );
        await fc.assert(
            fc.asyncProperty(fc.array(frame, {minLength: WS_BATCH, maxLength: WS_BATCH}), async (frames) => {
                const answered: Promise<void>[] = [];
                for (const item of frames) {
                    tried.ws++;
                    if ("binary" in item) {
                        ws.send(item.binary!);
                        continue;
                    }
                    if (!item.tracked) {
                        ws.send(item.text!);
                        continue;
                    }
                    const id = `f${next++}`;
                    answered.push(new Promise<void>((resolve) => waiting.set(id, resolve)));
                    // The id goes in front, so a body edit cannot replace it.
                    ws.send(`{"id":${JSON.stringify(id)},${item.text!.slice(1)}`);
                }
                await Promise.all(answered);
            }),
            {numRuns: WS_RUNS, seed: SEED, endOnFailure: true}
        );
        // One terminal frame per tracked request, never two.
        expect([...terminals.entries()].filter(([id, count]) => id.startsWith("f") && count !== 1)).toEqual([]);
        expect(ws.readyState).toBe(WebSocket.OPEN);
        ws.close();
        await closed;
    }, 120_000);

    it.each([
        ["a tiny positive temperature with top_p", {temperature: 7.718776615495288e-45, top_p: 0.9999999999999996}],
        ["a tiny repeat penalty with a JSON grammar", {repeat_penalty: 5.304924642341507e-282, response_format: {type: "json_object"}}]
    ])("regression found by this test: %s answers instead of holding its sequence forever", async (_name, extra) => {
        const response = await fetch(`${server.url}/v1/chat/completions`, {
            method: "POST",
            body: JSON.stringify({model: "stories260K", messages: [{role: "system", content: "exH"}], max_tokens: 8, ...extra}),
            signal: AbortSignal.timeout(5000)
        });
        expect(response.status).toBe(200);
        expectCompletionObject(await response.json(), "chat");
    });

    it("the server kept serving and nothing was rejected unhandled", async () => {
        const response = await fetch(`${server.url}/v1/completions`, {method: "POST", body: JSON.stringify({model: "stories260K", prompt: "Once", max_tokens: 3})});
        expect(response.status).toBe(200);
        const health = server.runtime.health();
        expect(health.slots).toMatchObject({running: 0, queued: 0});
        expect(server.runtime.activeGenerations).toBe(0);
        expect(unhandled).toEqual([]);
        expect(tried.http + tried.ws).toBeGreaterThanOrEqual(10_000);
    });
});
