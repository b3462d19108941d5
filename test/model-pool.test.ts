import {spawn} from "node:child_process";
import {copyFile, mkdtemp, rm, writeFile} from "node:fs/promises";
import {tmpdir} from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import OpenAI from "openai";
import WebSocket from "ws";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {ModelDirectory} from "../src/models/available-models.js";
import {ModelPool, type ModelPoolEvent} from "../src/runtime/model-pool.js";
import {startServer, type RunningServer} from "../src/api/server.js";
import {isStories260K, repoRoot, testModelPath} from "./helpers/model.js";
import {isolatedEnv} from "./helpers/cli.js";

/**
 * Several models behind one server: copies of the test model under other names in a temp
 * models folder ("alpha" is the default, "beta" another file, "broken.gguf" is not a model).
 */
let dir: string;

beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "edge-llm-pool-"));
    await copyFile(testModelPath, path.join(dir, "alpha.gguf"));
    await copyFile(testModelPath, path.join(dir, "beta.gguf"));
    await writeFile(path.join(dir, "broken.gguf"), Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(64, 0xab)]));
});
afterAll(() => rm(dir, {recursive: true, force: true}));

interface PoolServer extends RunningServer {
    pool: ModelPool;
    client: OpenAI;
    events: ModelPoolEvent[];
    stop(): Promise<void>;
}

async function startPoolServer({maxLoaded = 2, idleTtlMs = 0, models, contextSize = 512}: {maxLoaded?: number; idleTtlMs?: number; models?: Record<string, string>; contextSize?: number} = {}): Promise<PoolServer> {
    const events: ModelPoolEvent[] = [];
    const pool = new ModelPool({
        backend: await LlamaCppBackend.create({gpu: false, logger: () => {}}),
        catalog: new ModelDirectory({defaultModel: {path: path.join(dir, "alpha.gguf"), id: "alpha"}, models, modelsDir: dir}),
        loadOptions: (model, signal) => ({path: model.path, id: model.id, parallel: 2, contextSize, signal}),
        maxLoaded,
        idleTtlMs,
        onEvent: (event) => events.push(event)
    });
    const server = await startServer({models: pool, host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20, maxWsFrameBytes: 1 << 18});
    return {
        ...server,
        pool,
        events,
        client: new OpenAI({baseURL: `${server.url}/v1`, apiKey: "x", maxRetries: 0}),
        async stop() {
            await server.close();
            await pool.dispose();
        }
    };
}

interface ModelEntry {
    id: string;
    meta: {loaded: boolean; state: string; default: boolean; size_bytes?: number; context_length?: number; error?: string; aliases: string[]};
}

async function listModels(server: PoolServer) {
    const list = await server.client.models.list();
    return new Map((list.data as unknown as ModelEntry[]).map((model) => [model.id, model.meta]));
}

const ask = (server: PoolServer, model: string, max_tokens = 8) =>
    server.client.completions.create({model, prompt: "Once upon a time", max_tokens, temperature: 0});

const loadsOf = (server: PoolServer, model: string) => server.events.filter((event) => event.type === "loaded" && event.model === model).length;

describe("several models", () => {
    it("loads each model on first use; /v1/models lists what is available and what is loaded", async () => {
        const server = await startPoolServer({maxLoaded: 2});
        try {
            const before = await listModels(server);
            expect([...before.keys()]).toEqual(["alpha", "beta", "broken"]);
            expect(before.get("alpha")).toMatchObject({loaded: false, state: "unloaded", default: true, size_bytes: expect.any(Number)});
            expect(before.get("beta")!.loaded).toBe(false);

            const a = await ask(server, "alpha");
            const b = await ask(server, "beta.gguf");
            expect(a.model).toBe("alpha");
            expect(b.model).toBe("beta");
            // The same weights under two names: the same greedy text from two runtimes.
            expect(b.choices[0]!.text).toBe(a.choices[0]!.text);
            expect(a.choices[0]!.text.length).toBeGreaterThan(0);

            const after = await listModels(server);
            expect(after.get("alpha")).toMatchObject({loaded: true, state: "loaded", context_length: 512});
            expect(after.get("beta")).toMatchObject({loaded: true, state: "loaded", context_length: 512, aliases: ["beta.gguf"]});
            expect(after.get("broken")!.loaded).toBe(false);
            const retrieved = await server.client.models.retrieve("beta");
            expect(retrieved.id).toBe("beta");

            const health = await (await fetch(`${server.url}/health`)).json() as {status: string; model: {id: string}; models: {id: string; state: string}[]; maxLoadedModels: number};
            expect(health.status).toBe("ready");
            expect(health.model.id).toBe("alpha");
            expect(health.models.map((model) => [model.id, model.state])).toEqual([["alpha", "ready"], ["beta", "ready"]]);
            expect(health.maxLoadedModels).toBe(2);
            const metrics = await (await fetch(`${server.url}/metrics`)).text();
            expect(metrics).toMatch(/^edge_llm_models_loaded 2$/m);
        } finally {
            await server.stop();
        }
    });

    it("keeps at most maxLoadedModels: the least recently used idle model makes room", async () => {
        const server = await startPoolServer({maxLoaded: 1});
        try {
            await ask(server, "alpha");
            await ask(server, "beta");
            const models = await listModels(server);
            expect(models.get("alpha")!.loaded).toBe(false);
            expect(models.get("beta")!.loaded).toBe(true);
            expect(server.events).toContainEqual({type: "unloaded", model: "alpha", reason: "lru"});
            // And back: alpha loads again in beta's place.
            expect((await ask(server, "alpha")).model).toBe("alpha");
            expect(loadsOf(server, "alpha")).toBe(2);
            expect(server.pool.health().models.map((model) => model.id)).toEqual(["alpha"]);
        } finally {
            await server.stop();
        }
    });

    it("unloads a model loaded on demand after the idle TTL; the default model stays", async () => {
        const server = await startPoolServer({maxLoaded: 2, idleTtlMs: 300});
        try {
            await ask(server, "alpha");
            await ask(server, "beta");
            expect(server.pool.health().models.find((model) => model.id === "beta")?.unloadInSeconds).toBeDefined();
            await new Promise((resolve) => setTimeout(resolve, 200));
            await ask(server, "beta"); // a request restarts its clock
            await new Promise((resolve) => setTimeout(resolve, 200));
            expect((await listModels(server)).get("beta")!.loaded).toBe(true);
            await waitFor(() => server.events.some((event) => event.type === "unloaded" && event.model === "beta"), 3000);
            expect(server.events).toContainEqual({type: "unloaded", model: "beta", reason: "idle"});
            const models = await listModels(server);
            expect(models.get("beta")!.loaded).toBe(false);
            expect(models.get("alpha")!.loaded).toBe(true);
        } finally {
            await server.stop();
        }
    });

    it("concurrent first requests for a model share one load", async () => {
        const server = await startPoolServer({maxLoaded: 2});
        try {
            const answers = await Promise.all(Array.from({length: 6}, () => ask(server, "beta")));
            expect(answers.map((answer) => answer.model)).toEqual(Array(6).fill("beta"));
            expect(server.events.filter((event) => event.type === "loading" && event.model === "beta")).toHaveLength(1);
            expect(loadsOf(server, "beta")).toBe(1);
        } finally {
            await server.stop();
        }
    });

    it("answers 404 model_not_found for an unknown model, naming the available ones", async () => {
        const server = await startPoolServer();
        try {
            const error = await ask(server, "gpt-4o").catch((caught: unknown) => caught);
            expect(error).toBeInstanceOf(OpenAI.NotFoundError);
            expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe("model_not_found");
            expect((error as Error).message).toContain("alpha, beta, broken");
            const missing = await fetch(`${server.url}/v1/models/gpt-4o`);
            expect(missing.status).toBe(404);
            expect(server.events).toEqual([]);
        } finally {
            await server.stop();
        }
    });

    it("a model that fails to load gets a clear error; the others keep serving", async () => {
        const server = await startPoolServer({maxLoaded: 2});
        try {
            const stream = await server.client.completions.create({model: "alpha", prompt: "Once upon a time", max_tokens: 200, temperature: 0, stream: true});
            const error = await ask(server, "broken").catch((caught: unknown) => caught);
            expect(error).toBeInstanceOf(OpenAI.InternalServerError);
            expect((error as Error).message).toMatch(/The model 'broken' could not be loaded: .+/);
            let text = "";
            for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
            expect(text.length).toBeGreaterThan(100);
            expect((await ask(server, "alpha")).model).toBe("alpha");
            const models = await listModels(server);
            expect(models.get("broken")).toMatchObject({loaded: false, state: "failed", error: expect.any(String)});
            // A failed load holds no place: beta still loads beside alpha.
            expect((await ask(server, "beta")).model).toBe("beta");
        } finally {
            await server.stop();
        }
    });

    it("names in the models setting select a model; WebSocket requests pick models the same way", async () => {
        const server = await startPoolServer({maxLoaded: 2, models: {"story-teller": path.join(dir, "beta.gguf")}});
        try {
            const models = await listModels(server);
            expect([...models.keys()]).toEqual(["alpha", "story-teller", "broken"]);
            expect(models.get("story-teller")!.aliases).toEqual(["beta.gguf", "beta"]);
            expect((await ask(server, "story-teller")).model).toBe("story-teller");

            const ws = new WebSocket(`${server.url.replace("http", "ws")}/v1/ws`);
            await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
            const frames: Record<string, unknown>[] = [];
            ws.on("message", (data) => frames.push(JSON.parse(String(data))));
            ws.send(JSON.stringify({type: "completion", id: "1", body: {model: "beta", prompt: "Once upon a time", max_tokens: 8}}));
            ws.send(JSON.stringify({type: "completion", id: "2", body: {model: "nope", prompt: "Once upon a time", max_tokens: 8}}));
            await waitFor(() => frames.filter((frame) => frame.type === "done" || frame.type === "error").length === 2, 5000);
            expect(frames.find((frame) => frame.id === "1" && frame.type === "done")).toBeDefined();
            expect(frames.find((frame) => frame.id === "2" && frame.type === "error")).toMatchObject({error: {code: "model_not_found"}});
            ws.close();
        } finally {
            await server.stop();
        }
    });
});

describe("settings every runtime shares", () => {
    it("power limits reach models loaded later; threads are the largest any loaded model wants", async () => {
        const backend = await LlamaCppBackend.create({gpu: false, logger: () => {}});
        const pool = new ModelPool({
            backend,
            catalog: new ModelDirectory({defaultModel: {path: path.join(dir, "alpha.gguf"), id: "alpha"}, modelsDir: dir}),
            loadOptions: (model, signal) => ({path: model.path, id: model.id, parallel: 1, contextSize: 256, threads: model.id === "alpha" ? 2 : 1, signal}),
            maxLoaded: 2
        });
        try {
            pool.setLimits({maxTokens: 5});
            const run = async (model: string) => {
                let tokens = 0;
                for await (const event of await pool.generate({model, input: {kind: "completion", prompt: "Once upon a time"}, sampling: {temperature: 0}, stop: [], maxTokens: 50}))
                    if (event.type === "done") tokens = event.usage.completionTokens;
                return tokens;
            };
            expect(await run("alpha")).toBe(5);
            expect(backend.llama.maxThreads).toBe(2);
            expect(await run("beta")).toBe(5);
            // Loading beta (1 thread) must not take alpha's second thread away.
            expect(backend.llama.maxThreads).toBe(2);
            pool.setLimits({threads: 1});
            expect(backend.llama.maxThreads).toBe(1);
            pool.setLimits({});
            expect(backend.llama.maxThreads).toBe(2);
        } finally {
            await pool.dispose();
        }
    });
});

describe("loading a model while another streams", () => {
    // On the synthetic fallback model a synchronous native sampler call (AddonSampler, ~240 ms in a profile) stalls the loop; not understood yet.
    it.skipIf(!isStories260K)("does not stall the running stream", async () => {
        const server = await startPoolServer({maxLoaded: 2, contextSize: 4096});
        try {
            await ask(server, "alpha");
            const stream = await server.client.completions.create({model: "alpha", prompt: "Once upon a time", max_tokens: 1500, temperature: 0, stream: true});
            const arrivals: number[] = [];
            let loadStarted: number | undefined;
            let loadEnded: number | undefined;
            let loading: Promise<unknown> | undefined;
            for await (const chunk of stream) {
                arrivals.push(performance.now());
                // Fast tokens share a chunk per 16 ms (STREAM_COALESCE_MS): the load starts early in the stream.
                if (arrivals.length === 3) {
                    loadStarted = performance.now();
                    loading = ask(server, "beta").then((answer) => {
                        loadEnded = performance.now();
                        return answer;
                    });
                }
                void chunk;
            }
            const streamEnded = performance.now();
            expect(((await loading) as OpenAI.Completion).model).toBe("beta");
            // The second model loaded while the stream ran…
            expect(loadEnded).toBeDefined();
            expect(loadEnded!).toBeLessThan(streamEnded);
            // …and the stream kept flowing: no long gap between chunks while it loaded (the rest of the
            // stream is only logged: other processes on the machine cause pauses of their own).
            const gaps = arrivals.slice(1).map((at, index) => at - arrivals[index]!);
            const maxGap = Math.max(...gaps);
            const gapsDuringLoad = gaps.filter((_, index) => arrivals[index + 1]! >= loadStarted! && arrivals[index]! <= loadEnded!);
            console.log(`beta loaded in ${Math.round(loadEnded! - loadStarted!)} ms during the stream; max gap between chunks ${maxGap.toFixed(1)} ms ` +
                `(${Math.max(...gapsDuringLoad).toFixed(1)} ms while loading) over ${arrivals.length} chunks`);
            expect(gapsDuringLoad.length).toBeGreaterThan(2);
            expect(Math.max(...gapsDuringLoad)).toBeLessThan(250);
        } finally {
            await server.stop();
        }
    });

    it("with no room, waits for the busy model's stream to end instead of cutting it", async () => {
        const server = await startPoolServer({maxLoaded: 1, contextSize: 2048});
        try {
            const stream = await server.client.completions.create({model: "alpha", prompt: "Once upon a time", max_tokens: 600, temperature: 0, stream: true});
            let text = "";
            let beta: Promise<OpenAI.Completion> | undefined;
            let finish: string | null | undefined;
            for await (const chunk of stream) {
                text += chunk.choices[0]?.text ?? "";
                finish ??= chunk.choices[0]?.finish_reason;
                if (beta == null) {
                    beta = ask(server, "beta");
                    await waitFor(() => server.events.some((event) => event.type === "draining"), 2000);
                    // Draining: no new requests for alpha until beta has had its turn.
                    expect(server.pool.health().models[0]).toMatchObject({id: "alpha", state: "draining"});
                }
            }
            expect(finish).toBe("length");
            expect(text.length).toBeGreaterThan(200);
            expect((await beta!).model).toBe("beta");
            const unloaded = server.events.findIndex((event) => event.type === "unloaded" && event.model === "alpha");
            const betaLoading = server.events.findIndex((event) => event.type === "loading" && event.model === "beta");
            expect(unloaded).toBeGreaterThanOrEqual(0);
            expect(unloaded).toBeLessThan(betaLoading);
        } finally {
            await server.stop();
        }
    });
});

describe("a request that stops waiting for room", () => {
    it("leaves the busy model serving: it stops draining and is not unloaded", async () => {
        const server = await startPoolServer({maxLoaded: 1, contextSize: 2048});
        try {
            const stream = await server.client.completions.create({model: "alpha", prompt: "Once upon a time", max_tokens: 600, temperature: 0, stream: true});
            const controller = new AbortController();
            let beta: Promise<unknown> | undefined;
            let finish: string | null | undefined;
            for await (const chunk of stream) {
                finish ??= chunk.choices[0]?.finish_reason;
                if (beta != null) continue;
                beta = server.client.completions.create({model: "beta", prompt: "x", max_tokens: 4}, {signal: controller.signal}).catch((error: unknown) => error);
                await waitFor(() => server.events.some((event) => event.type === "draining"), 2000);
                controller.abort();
                expect(await beta).toBeInstanceOf(OpenAI.APIUserAbortError);
                await waitFor(() => server.pool.health().models[0]?.state === "ready", 2000);
            }
            expect(finish).toBe("length");
            expect((await ask(server, "alpha")).model).toBe("alpha");
            expect(server.events.filter((event) => event.type === "unloaded" || event.type === "loading").map((event) => event.model)).toEqual(["alpha"]);
        } finally {
            await server.stop();
        }
    });
});

describe("edge-llm serve", () => {
    it("serves every model of the models folder, loading and replacing them as requests name them", async () => {
        const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/main.ts"), "serve", "--models-dir", dir,
            "--model", path.join(dir, "alpha.gguf"), "--port", "0", "--parallel", "1", "--ctx-size", "256", "--max-loaded-models", "1"],
        {cwd: repoRoot, env: isolatedEnv({EDGE_LLM_POWER: "false"})});
        let stderr = "";
        child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
        try {
            await waitFor(() => /"msg":"ready: /.test(stderr), 20_000);
            const url = /"url":"(http:[^"]+)"/.exec(stderr)![1]!;
            const client = new OpenAI({baseURL: `${url}/v1`, apiKey: "x", maxRetries: 0});
            const answer = await client.chat.completions.create({model: "beta", messages: [{role: "user", content: "Hi"}], max_tokens: 4});
            expect(answer.model).toBe("beta");
            const models = (await client.models.list()).data as unknown as ModelEntry[];
            expect(models.map((model) => [model.id, model.meta.loaded])).toEqual([["alpha", false], ["beta", true], ["broken", false]]);
            expect(stderr).toContain("loaded model beta in");
            expect(stderr).toContain("unloaded model alpha (room for another model)");
        } finally {
            child.kill("SIGTERM");
            await new Promise((resolve) => child.once("close", resolve));
        }
    });
});

async function waitFor(condition: () => boolean, timeoutMs: number) {
    const deadline = performance.now() + timeoutMs;
    while (!condition()) {
        if (performance.now() > deadline) throw new Error("timed out waiting for a condition");
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
}
