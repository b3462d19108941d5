import {spawn, type ChildProcessWithoutNullStreams} from "node:child_process";
import {mkdtemp, rm, symlink, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {ModelResolutionError, resolveModel} from "../src/models/default-model.js";
import {Runtime} from "../src/runtime/runtime.js";
import type {ChatMessage} from "../src/runtime/types.js";
import {isStories260K, repoRoot, testModelPath} from "./helpers/model.js";
import {startTestServer} from "./helpers/server.js";
import {isolatedEnv} from "./helpers/cli.js";

/** The CLI as users run it, through tsx: one child process per command. */
class Cli {
    readonly child: ChildProcessWithoutNullStreams;
    stdout = "";
    stderr = "";
    readonly exited: Promise<{code: number | null; signal: NodeJS.Signals | null}>;
    private readonly listeners = new Set<() => void>();

    constructor(args: string[], env: Record<string, string> = {}) {
        this.child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/main.ts"), ...args], {
            cwd: repoRoot,
            env: isolatedEnv(env)
        });
        const changed = () => this.listeners.forEach((listener) => listener());
        this.child.stdout.setEncoding("utf8").on("data", (text: string) => { this.stdout += text; changed(); });
        this.child.stderr.setEncoding("utf8").on("data", (text: string) => { this.stderr += text; changed(); });
        this.exited = new Promise((resolve) => this.child.on("close", (code, signal) => resolve({code, signal})));
    }

    /** Resolves once `condition` holds; fails with the output so far after `timeoutMs`. */
    waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
        return new Promise((resolve, reject) => {
            const check = () => {
                if (!condition()) return;
                cleanup();
                resolve();
            };
            const timer = setTimeout(() => {
                cleanup();
                reject(new Error(`timed out; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`));
            }, timeoutMs);
            const cleanup = () => {
                clearTimeout(timer);
                this.listeners.delete(check);
            };
            this.listeners.add(check);
            check();
        });
    }
}

async function runCli(args: string[], options: {input?: string; env?: Record<string, string>} = {}) {
    const cli = new Cli(args, options.env);
    cli.child.stdin.end(options.input ?? "");
    const {code} = await cli.exited;
    return {code, stdout: cli.stdout, stderr: cli.stderr};
}

const count = (text: string, part: string) => text.split(part).length - 1;

let tmp: string;
let runtime: Runtime;

beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "edge-llm-cli-"));
    // Loaded exactly as `edge-llm chat` loads it (parallel 1, default context and threads), to predict its greedy answers.
    runtime = new Runtime(await LlamaCppBackend.create({gpu: false}));
    await runtime.load({path: testModelPath, id: "stories260K", parallel: 1});
});

afterAll(async () => {
    await runtime?.dispose();
    if (tmp != null) await rm(tmp, {recursive: true, force: true});
});

async function greedyAnswer(messages: ChatMessage[], maxTokens: number) {
    const generation = await runtime.generate({input: {kind: "chat", messages}, sampling: {temperature: 0}, maxTokens, stop: []});
    let text = "";
    for await (const event of generation)
        if (event.type === "delta") text += event.text;
    return text;
}

describe("edge-llm chat", () => {
    it("shows the power level when it is not nominal", async () => {
        const {code, stdout, stderr} = await runCli(
            ["chat", "--model", testModelPath, "--temperature", "0", "--max-tokens", "8", "--log-level", "error"],
            {input: "Tell me a story\n/exit\n", env: {EDGE_LLM_POWER_OVERRIDE: "serious"}}
        );
        expect(code).toBe(0);
        expect(stderr).toMatch(/\[power: serious — .*answers paced to 8 tok\/s, at most 512 tokens\]/);
        expect(stdout.length).toBeGreaterThan(0);
    });

    it("answers piped turns, keeps the history, resets it and exits on /exit", async () => {
        const {code, stdout, stderr} = await runCli(
            ["chat", "--model", testModelPath, "--temperature", "0", "--max-tokens", "20", "--log-level", "error"],
            {input: "Hello\nHow are you?\n/reset\nHello\n/exit\nnever read\n"}
        );
        expect(code, stderr).toBe(0);

        const first = await greedyAnswer([{role: "user", content: "Hello"}], 20);
        const second = await greedyAnswer([
            {role: "user", content: "Hello"},
            {role: "assistant", content: first},
            {role: "user", content: "How are you?"}
        ], 20);
        expect(first.length).toBeGreaterThan(0);
        expect(second).not.toBe(first);
        // After /reset the same question gets the same answer as in a fresh conversation.
        expect(stdout).toBe(`${first}\n${second}\n${first}\n`);
        expect(stderr).toContain("(conversation cleared)");
    });

    it("stops a streaming answer on SIGINT (Ctrl-C) and keeps running", async () => {
        // Uncut, each of these answers is 2000 tokens (~4 s, ~3,900 characters): the model never ends
        // a story on its own. Cut by Ctrl-C right after the first text, they stay far shorter.
        const cli = new Cli(["chat", "--model", testModelPath, "--temperature", "0", "--max-tokens", "2000", "--log-level", "error"]);
        cli.child.stdin.write("Once upon a time\n");
        await cli.waitFor(() => cli.stdout.length > 0);
        cli.child.kill("SIGINT");
        await cli.waitFor(() => count(cli.stderr, "(answer stopped)") === 1);
        const afterFirst = cli.stdout.length;
        expect(cli.stdout.endsWith("\n")).toBe(true);
        expect(afterFirst).toBeLessThan(1500);

        cli.child.stdin.write("Tell me more\n");
        await cli.waitFor(() => cli.stdout.length > afterFirst);
        cli.child.kill("SIGINT");
        await cli.waitFor(() => count(cli.stderr, "(answer stopped)") === 2);
        expect(cli.stdout.length - afterFirst).toBeLessThan(1500);

        cli.child.stdin.write("/exit\n");
        expect((await cli.exited).code).toBe(0);
    });

    it("talks to a running server with --url", async () => {
        const server = await startTestServer();
        try {
            const {code, stdout, stderr} = await runCli(
                ["chat", "--url", server.url, "--temperature", "0", "--max-tokens", "20"],
                {input: "Hello\n"}
            );
            expect(code, stderr).toBe(0);
            const response = await fetch(`${server.url}/v1/chat/completions`, {
                method: "POST",
                headers: {"content-type": "application/json"},
                body: JSON.stringify({model: server.modelId, messages: [{role: "user", content: "Hello"}], temperature: 0, max_tokens: 20})
            });
            const body = await response.json() as {choices: {message: {content: string}}[]};
            expect(body.choices[0]!.message.content.length).toBeGreaterThan(0);
            expect(stdout).toBe(`${body.choices[0]!.message.content}\n`);
        } finally {
            await server.stop();
        }
    });
});

describe("edge-llm models", () => {
    it.skipIf(!isStories260K)("lists GGUF metadata and reports unreadable files without failing", async () => {
        const dir = await mkdtemp(path.join(tmp, "models-"));
        await symlink(testModelPath, path.join(dir, "stories260K.gguf"));
        await writeFile(path.join(dir, "broken.gguf"), Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(64, 0xff)]));
        await writeFile(path.join(dir, "notes.gguf"), "not a model");
        await writeFile(path.join(dir, "readme.txt"), "ignored");

        const {code, stdout, stderr} = await runCli(["models", "--json", "--models-dir", dir]);
        expect(code, stderr).toBe(0);
        const {models} = JSON.parse(stdout) as {models: Record<string, unknown>[]};
        expect(models.map((model) => model.file)).toEqual(["broken.gguf", "notes.gguf", "stories260K.gguf"]);
        expect(models[2]).toMatchObject({architecture: "llama", contextLength: 2048, quantization: "F32", sizeBytes: 1_185_376});
        expect(models[2]!.parameters).toBeGreaterThan(250_000);
        expect(models[2]!.error).toBeUndefined();
        expect(models[0]!.error).toEqual(expect.any(String));
        expect(models[1]!.error).toContain("Not a GGUF");

        const table = await runCli(["models", testModelPath]);
        expect(table.code).toBe(0);
        expect(table.stdout).toMatch(/stories260K\.gguf\s+llama\s+\S+\s+F32\s+2048\s+1\.2 MB/);
    });
});

describe("model resolution", () => {
    it("takes the first .gguf by name, else downloads the catalog default within the time limit", async () => {
        const dir = await mkdtemp(path.join(tmp, "resolve-"));
        await writeFile(path.join(dir, "catalog.json"), JSON.stringify({
            default: "tiny",
            models: [{id: "tiny", name: "Tiny", uri: "hf:example/tiny-GGUF/tiny.gguf"}]
        }));
        const hanging = () => new Promise<string>(() => {});
        const started = performance.now();
        const failure = await resolveModel({modelsDir: dir, downloadTimeoutSeconds: 0.3, download: hanging, log: () => {}}).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(ModelResolutionError);
        expect((failure as Error).message).toContain("edge-llm serve --model path/to/model.gguf");
        expect((failure as Error).message).toContain("https://huggingface.co/example/tiny-GGUF/resolve/main/tiny.gguf");
        expect(performance.now() - started).toBeLessThan(2000);

        const downloaded = await resolveModel({
            modelsDir: dir,
            downloadTimeoutSeconds: 5,
            log: () => {},
            download: async ({uri, dirPath, onProgress}) => {
                expect(uri).toBe("hf:example/tiny-GGUF/tiny.gguf");
                onProgress({downloadedBytes: 10, totalBytes: 10});
                // Downloads land in the models folder's .downloads/ and move up once complete.
                const file = path.join(dirPath, "tiny.gguf");
                await writeFile(file, Buffer.concat([Buffer.from("GGUF"), Buffer.alloc(12)]));
                return file;
            }
        });
        expect(downloaded).toEqual({path: path.join(dir, "tiny.gguf"), source: "downloaded"});

        await writeFile(path.join(dir, "b.gguf"), "");
        await writeFile(path.join(dir, "a.gguf"), "");
        expect(await resolveModel({modelsDir: dir, downloadTimeoutSeconds: 1})).toEqual({path: path.join(dir, "a.gguf"), source: "models-dir"});
    });
});

describe("edge-llm serve", () => {
    it("fails fast with a clear message when there is no model and no network", async () => {
        const dir = await mkdtemp(path.join(tmp, "empty-"));
        // Port 9 (discard) on loopback is closed: the download can never start.
        await writeFile(path.join(dir, "catalog.json"), JSON.stringify({
            default: "x",
            models: [{id: "x", name: "Unreachable model", uri: "http://127.0.0.1:9/model.gguf"}]
        }));
        const started = performance.now();
        const {code, stderr} = await runCli(["serve", "--models-dir", dir, "--port", "0"], {env: {EDGE_LLM_DOWNLOAD_TIMEOUT: "2"}});
        expect(code).toBe(1);
        expect(performance.now() - started).toBeLessThan(10_000);
        expect(stderr).toContain("No model to serve");
        expect(stderr).toContain("within 2 s");
        expect(stderr).toContain("edge-llm serve --model path/to/model.gguf");
        expect(stderr).toContain("http://127.0.0.1:9/model.gguf");
        expect(stderr).not.toMatch(/^\s+at /m);
    });

    it.skipIf(!isStories260K)("serves the model on a free port and shuts down cleanly on SIGTERM", async () => {
        const cli = new Cli(["serve", "--model", testModelPath, "--port", "0", "--parallel", "1", "--ctx-size", "512"]);
        try {
            await cli.waitFor(() => /"msg":"ready: /.test(cli.stderr));
            const lines = cli.stderr.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>);
            const listening = lines.findIndex((line) => String(line.msg).startsWith("listening on"));
            const ready = lines.findIndex((line) => String(line.msg).startsWith("ready: "));
            expect(listening).toBeGreaterThanOrEqual(0);
            expect(listening).toBeLessThan(ready);
            expect(lines[ready]).toMatchObject({model: "stories260K", threads: 1, ctx: 512, parallel: 1, accelerator: expect.any(String)});
            const url = lines[ready]!.url as string;

            const health = await fetch(`${url}/health`);
            expect(health.status).toBe(200);
            const response = await fetch(`${url}/v1/chat/completions`, {
                method: "POST",
                headers: {"content-type": "application/json"},
                body: JSON.stringify({model: "stories260K", messages: [{role: "user", content: "Hi"}], max_tokens: 8})
            });
            expect(response.status).toBe(200);
            const body = await response.json() as {choices: {message: {content: string}}[]};
            expect(typeof body.choices[0]!.message.content).toBe("string");

            cli.child.kill("SIGTERM");
            expect((await cli.exited).code).toBe(0);
            expect(cli.stderr).toContain("SIGTERM: shutting down");
        } finally {
            cli.child.kill("SIGKILL");
        }
    });

    it("rejects invalid settings with exit code 2 and names the variable", async () => {
        const [settings, usage] = await Promise.all([
            runCli(["serve", "--model", testModelPath], {env: {EDGE_LLM_PORT: "abc"}}),
            runCli(["chat", "--model", testModelPath, "--temperature", "hot"])
        ]);
        expect(settings.code).toBe(2);
        expect(settings.stderr).toContain("EDGE_LLM_PORT");
        expect(settings.stderr).not.toMatch(/^\s+at /m);
        expect(usage.code).toBe(2);
        expect(usage.stderr).toContain("--temperature");
    });
});
