import {spawn} from "node:child_process";
import {mkdtemp, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import OpenAI from "openai";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {startServer, type RunningServer} from "../src/api/server.js";
import {MlxBackend} from "../src/backends/mlx/backend.js";
import {loadMlxModule, MlxUnavailableError} from "../src/backends/mlx/loader.js";
import type {MlxChatConfig, MlxChatMessage, MlxLmModule, MlxLoadOptions, MlxModel, MlxStreamEvent} from "../src/backends/mlx/mlx-api.js";
import {Runtime} from "../src/runtime/runtime.js";
import {repoRoot} from "./helpers/model.js";
import {isolatedEnv} from "./helpers/cli.js";

/**
 * The MLX adapter against a fake `@mlx-node/lm` with the package's API surface (the real one
 * needs Apple Silicon and its native @mlx-node/core), through the real HTTP server and the real
 * OpenAI client.
 */

interface Call {
    messages: MlxChatMessage[];
    config: MlxChatConfig | null | undefined;
    signal?: AbortSignal;
    ended: boolean;
}

/** Streams the words of its reply (or endless words for "forever") with a few ms between them; honours the signal. */
function fakeMlx() {
    const calls: Call[] = [];
    const loads: {path: string; options?: MlxLoadOptions}[] = [];
    const module: MlxLmModule = {
        async loadModel(modelPath, options) {
            loads.push({path: modelPath, options});
            const model: MlxModel = {
                async *chatStreamSessionStart(messages, config, signal): AsyncGenerator<MlxStreamEvent> {
                    const call: Call = {messages, config, signal, ended: false};
                    calls.push(call);
                    try {
                        const last = messages.at(-1)!.content;
                        const words = last === "forever" ? Array.from({length: 100_000}, (_, index) => ` w${index}`) : ["Hello", " from", " MLX", "."];
                        let count = 0;
                        for (const word of words) {
                            await new Promise((resolve) => setTimeout(resolve, 2));
                            if (signal?.aborted) return;
                            count++;
                            yield {text: word, done: false};
                        }
                        yield {text: words.join(""), done: true, finishReason: "stop", numTokens: count, promptTokens: 7};
                    } finally {
                        call.ended = true;
                    }
                },
                resetCaches() {},
                contextLimits: () => ({trainedWindowTokens: 32768, effectiveWindowTokens: 8192})
            };
            return model;
        }
    };
    return {module, calls, loads};
}

let tmp: string;
let modelDir: string;
let server: RunningServer;
let runtime: Runtime;
let client: OpenAI;
const fake = fakeMlx();

beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "edge-llm-mlx-"));
    modelDir = path.join(tmp, "Qwen3-0.6B-4bit");
    await import("node:fs/promises").then((fs) => fs.mkdir(modelDir));
    await writeFile(path.join(modelDir, "config.json"), JSON.stringify({model_type: "qwen3"}));
    await writeFile(path.join(modelDir, "model.safetensors"), Buffer.alloc(1000));
    const backend = await MlxBackend.create({platform: "darwin", arch: "arm64", importModule: async () => fake.module});
    runtime = new Runtime(backend);
    await runtime.load({path: modelDir, id: "qwen3-mlx", parallel: 1, draftPath: path.join(tmp, "draft")});
    server = await startServer({runtime, host: "127.0.0.1", port: 0, maxBodyBytes: 1024 * 1024, maxWsFrameBytes: 64 * 1024});
    client = new OpenAI({baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0});
});

afterAll(async () => {
    await server?.close();
    await runtime?.dispose();
    if (tmp != null) await rm(tmp, {recursive: true, force: true});
});

describe("MLX backend (fake @mlx-node/lm)", () => {
    it("refuses to load anywhere but Apple Silicon, naming the platform", async () => {
        const failure = await loadMlxModule({platform: "linux", arch: "x64", importModule: async () => fake.module}).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(MlxUnavailableError);
        expect((failure as Error).message).toBe("The MLX backend needs Apple Silicon (darwin-arm64); this machine is linux-x64. Use --backend llama.cpp (the default) here.");
        const missing = await loadMlxModule({platform: "darwin", arch: "arm64", importModule: () => Promise.reject(new Error("Cannot find package '@mlx-node/lm'"))})
            .catch((error: unknown) => error);
        expect((missing as Error).message).toMatch(/needs the optional package @mlx-node\/lm: npm install @mlx-node\/lm/);
    });

    it("loads the model folder with its draft model and describes it", () => {
        expect(fake.loads).toEqual([{path: modelDir, options: {draftModelPath: path.join(tmp, "draft")}}]);
        expect(runtime.listModels()[0]).toMatchObject({id: "qwen3-mlx", architecture: "qwen3", accelerator: "metal", contextSize: 8192, trainContextSize: 32768, parallel: 1, fileSizeBytes: 1000});
    });

    it("streams a chat completion through the HTTP API with usage", async () => {
        const stream = await client.chat.completions.create({
            model: "qwen3-mlx", stream: true, stream_options: {include_usage: true}, temperature: 0.5, top_p: 0.9,
            messages: [{role: "system", content: "Be brief."}, {role: "user", content: "Hi there"}]
        });
        let text = "";
        let usage;
        for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? "";
            if (chunk.usage != null) usage = chunk.usage;
        }
        expect(text).toBe("Hello from MLX.");
        expect(usage?.completion_tokens).toBe(4);
        expect(usage?.prompt_tokens).toBeGreaterThan(0);
        const call = fake.calls.at(-1)!;
        expect(call.messages).toEqual([{role: "system", content: "Be brief."}, {role: "user", content: "Hi there"}]);
        expect(call.config).toMatchObject({temperature: 0.5, topP: 0.9, maxNewTokens: 8192});
        expect(call.ended).toBe(true);
    });

    it("applies stop strings and max_tokens to the text stream", async () => {
        const stopped = await client.chat.completions.create({model: "qwen3-mlx", messages: [{role: "user", content: "Hi"}], stop: [" MLX"]});
        expect(stopped.choices[0]!.message.content).toBe("Hello from");
        const limited = await client.chat.completions.create({model: "qwen3-mlx", messages: [{role: "user", content: "Hi"}], max_tokens: 2});
        expect(limited.choices[0]!.message.content).toBe("Hello from");
        expect(limited.choices[0]!.finish_reason).toBe("length");
    });

    it("stops native decoding when the client goes away, and serves the next request", async () => {
        const controller = new AbortController();
        const stream = await client.chat.completions.create({model: "qwen3-mlx", stream: true, messages: [{role: "user", content: "forever"}]}, {signal: controller.signal});
        let chunks = 0;
        try {
            for await (const _ of stream) {
                if (++chunks === 3) controller.abort();
                if (chunks > 3) break;
            }
        } catch {
            // the client may report the abort as an error
        }
        const call = fake.calls.at(-1)!;
        await expect.poll(() => call.signal?.aborted && call.ended, {timeout: 2000}).toBe(true);
        const after = await client.chat.completions.create({model: "qwen3-mlx", messages: [{role: "user", content: "Hi"}]});
        expect(after.choices[0]!.message.content).toBe("Hello from MLX.");
    });

    it("answers unsupported requests with OpenAI errors", async () => {
        await expect(client.completions.create({model: "qwen3-mlx", prompt: "Once"})).rejects.toMatchObject({status: 400, message: expect.stringContaining("serves chat only")});
        await expect(client.chat.completions.create({model: "qwen3-mlx", messages: [{role: "user", content: "Hi"}], response_format: {type: "json_object"}}))
            .rejects.toMatchObject({status: 400, message: expect.stringContaining("not supported by the MLX backend")});
    });

    it("edge-llm serve --backend mlx says it needs Apple Silicon on this machine", async () => {
        if (process.platform === "darwin" && process.arch === "arm64") return;
        const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/main.ts"), "serve", "--backend", "mlx", "--model", modelDir, "--port", "0"], {cwd: repoRoot, env: isolatedEnv()});
        let stderr = "";
        child.stderr.setEncoding("utf8").on("data", (text: string) => { stderr += text; });
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        expect(code).toBe(1);
        expect(stderr).toContain(`The MLX backend needs Apple Silicon (darwin-arm64); this machine is ${process.platform}-${process.arch}.`);
    });
});
