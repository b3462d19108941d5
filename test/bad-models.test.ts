import {spawn} from "node:child_process";
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {Runtime} from "../src/runtime/runtime.js";
import {startServer, type RunningServer} from "../src/api/server.js";
import {writeBadModels} from "./helpers/bad-models.js";
import {repoRoot, testModelPath} from "./helpers/model.js";
import {isolatedEnv} from "./helpers/cli.js";

let dir: string;
let files: Awaited<ReturnType<typeof writeBadModels>>;
let runtime: Runtime;
let server: RunningServer;

beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-bad-models-"));
    files = await writeBadModels(dir);
    runtime = new Runtime(await LlamaCppBackend.create({gpu: false}));
    server = await startServer({runtime, host: "127.0.0.1", port: 0, maxBodyBytes: 1024 * 1024, maxWsFrameBytes: 1024 * 1024});
});
afterAll(async () => {
    await server?.close();
    await runtime?.dispose();
    if (dir != null) await rm(dir, {recursive: true, force: true});
});

const chat = {model: "stories260K", messages: [{role: "user", content: "Hi"}], max_tokens: 4};

describe("bad model files get a clear error and the server stays up", () => {
    const cases: [keyof typeof files, RegExp][] = [
        ["missing", /Model file not found: .*missing\.gguf/],
        ["notGguf", /Not a GGUF model file/],
        ["garbageHeader", /not a valid GGUF file: its header cannot be read/],
        ["truncated", /is truncated: it has .* but its header describes .*interrupted download/],
        ["wrongArchitecture", /'edge-test-arch' model, an architecture this llama\.cpp build does not support/],
        ["largerThanMemory", /Not enough memory: larger-than-memory\.gguf needs .* for its weights/]
    ];

    it.each(cases)("%s", async (name, message) => {
        await expect(runtime.load({path: files[name], id: "stories260K", parallel: 1, contextSize: 256})).rejects.toThrow(message);

        const health = await fetch(`${server.url}/health`);
        expect(health.status).toBe(503);
        expect(await health.json()).toMatchObject({status: "failed", error: expect.stringMatching(message)});

        const response = await fetch(`${server.url}/v1/chat/completions`, {method: "POST", body: JSON.stringify(chat)});
        expect(response.status).toBe(503);
        expect(response.headers.get("retry-after")).not.toBeNull();
        const {error} = await response.json() as {error: {message: string; code: string}};
        expect(error.code).toBe("not_ready");
        expect(error.message).toMatch(/^The model failed to load: /);
        expect(error.message).toMatch(message);
    });

    it("the same server then loads a good model and serves it", async () => {
        await runtime.load({path: testModelPath, id: "stories260K", parallel: 1, contextSize: 256});
        const health = await (await fetch(`${server.url}/health`)).json() as {status: string; error?: string};
        expect(health.status).toBe("ready");
        expect(health.error).toBeUndefined();
        const response = await fetch(`${server.url}/v1/chat/completions`, {method: "POST", body: JSON.stringify(chat)});
        expect(response.status).toBe(200);
    });

    it("`edge-llm serve` with a bad model keeps running: /health says why (503), requests for it get the reason", async () => {
        const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/main.ts"), "serve", "--model", files.truncated, "--port", "0"], {
            cwd: repoRoot,
            env: isolatedEnv()
        });
        let stderr = "";
        const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
        try {
            await new Promise<void>((resolve, reject) => {
                const timer = setTimeout(() => reject(new Error(`no load failure logged:\n${stderr}`)), 20_000);
                child.stderr.setEncoding("utf8").on("data", (text: string) => {
                    stderr += text;
                    if (stderr.includes("Cannot load model")) {
                        clearTimeout(timer);
                        resolve();
                    }
                });
            });
            const url = /"url":"(http:[^"]+)"/.exec(stderr)![1]!;
            const health = await fetch(`${url}/health`);
            expect(health.status).toBe(503);
            expect(await health.json()).toMatchObject({status: "failed", error: expect.stringContaining("is truncated")});
            // The pool tries the default model again on a request for it; the file is still truncated.
            const response = await fetch(`${url}/v1/completions`, {method: "POST", body: JSON.stringify({model: "default", prompt: "x", max_tokens: 2})});
            expect(response.status).toBe(500);
            expect((await response.json() as {error: {message: string}}).error.message).toContain("is truncated");
            child.kill("SIGTERM");
            expect(await exited).toBe(0);
        } finally {
            child.kill("SIGKILL");
        }
    });
});
