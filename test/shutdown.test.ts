import {mkdtemp, readdir, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {WebSocket} from "ws";
import {testModelPath} from "./helpers/model.js";
import {startServe} from "./helpers/cli.js";

/**
 * Longer than a KV block (32 tokens), so every sequence holds something worth persisting. The
 * context (1024) holds it and 400 more tokens in stories260K's tokens and the synthetic fallback's (147).
 */
const PROMPT = "Once upon a time there was a little girl named Lily. She liked to play in the park with her dog. ".repeat(2);

let dir: string;
beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-shutdown-"));
});
afterAll(async () => {
    if (dir != null) await rm(dir, {recursive: true, force: true});
});

/** Reads an SSE response to its end: the parsed chunks, and whether it ended with [DONE]. */
async function readSse(response: Response, onFirstChunk?: () => void) {
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    let first = true;
    for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        text += decoder.decode(value, {stream: true});
        if (first && text.includes("data: ")) {
            first = false;
            onFirstChunk?.();
        }
    }
    const payloads = text.split("\n\n").filter((event) => event.startsWith("data: ")).map((event) => event.slice(6));
    return {
        done: payloads.at(-1) === "[DONE]",
        chunks: payloads.filter((payload) => payload !== "[DONE]").map((payload) => JSON.parse(payload) as {choices: {finish_reason: string | null}[]; error?: unknown})
    };
}

// The id `serve` gives the model: its file name (the synthetic fallback model is not stories260K).
const modelId = path.basename(testModelPath, ".gguf");

describe("graceful shutdown of `edge-llm serve`", () => {
    it("on SIGTERM: stops accepting, lets short streams finish, ends long ones properly at the deadline, persists sessions, exits 0", async () => {
        // Paced at 20 tok/s ("fair" power level, 3 at once), so a long answer outlasts the 1 s grace period.
        const config = path.join(dir, "config.mjs");
        await writeFile(config, `export default ${JSON.stringify({power: {override: "fair", limits: {fair: {maxConcurrent: 3}}}})};\n`);
        const spillDir = path.join(dir, "kv");
        const serve = await startServe(
            ["--model", testModelPath, "--port", "0", "--parallel", "3", "--ctx-size", "1024", "--shutdown-grace", "1", "--config", config, "--log-level", "debug"],
            {EDGE_LLM_PERSIST_SESSIONS: "1", EDGE_LLM_KV_SPILL_DIR: spillDir, EDGE_LLM_POWER: "1"}
        );
        try {
            const post = (body: object) => fetch(`${serve.url}/v1/completions`, {
                method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: modelId, prompt: PROMPT, stream: true, ...body})
            });
            const started: Promise<void>[] = [];
            const mark = () => {
                let resolve!: () => void;
                started.push(new Promise<void>((done) => { resolve = done; }));
                return resolve;
            };
            // Marked before the requests go out: a mark taken only once a response arrived was not yet
            // in `started` when the WebSocket's first delta came first, and SIGTERM could then reach
            // the server before the short request did.
            const shortStarted = mark();
            const longStarted = mark();
            const short = post({max_tokens: 8}).then((response) => readSse(response, shortStarted));
            const long = post({max_tokens: 400}).then((response) => readSse(response, longStarted));

            const ws = new WebSocket(`${serve.url.replace(/^http/, "ws")}/v1/ws`);
            await new Promise((resolve) => ws.once("open", resolve));
            const frames: {type: string; id?: string; finish_reason?: string}[] = [];
            const wsStarted = mark();
            const wsDone = new Promise<void>((resolve) => ws.on("message", (data) => {
                const frame = JSON.parse(data.toString()) as {type: string; finish_reason?: string};
                frames.push(frame);
                if (frame.type === "delta") wsStarted();
                if (frame.type === "done" || frame.type === "error") resolve();
            }));
            const wsClosed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
            ws.send(JSON.stringify({type: "completion", id: "long-ws", body: {model: modelId, prompt: PROMPT, max_tokens: 400}}));

            await Promise.all(started);
            const signalledAt = performance.now();
            serve.child.kill("SIGTERM");
            await new Promise((resolve) => setTimeout(resolve, 150));
            // No new connections once shutdown starts.
            await expect(fetch(`${serve.url}/health`)).rejects.toThrow();

            const shortResult = await short;
            expect(shortResult.done, `short stream ended without [DONE] after ${shortResult.chunks.length} chunks; server log:\n${serve.stderr().slice(-3000)}`).toBe(true);
            expect(shortResult.chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");

            const longResult = await long;
            const cutAfter = performance.now() - signalledAt;
            expect(longResult.done, `long stream ended without [DONE] after ${longResult.chunks.length} chunks; server log:\n${serve.stderr().slice(-3000)}`).toBe(true);
            expect(longResult.chunks.some((chunk) => chunk.error != null)).toBe(false);
            // OpenAI has no "cancelled": the final chunk says "stop", and [DONE] follows.
            expect(longResult.chunks.at(-1)!.choices[0]!.finish_reason).toBe("stop");
            expect(cutAfter).toBeGreaterThan(900);
            expect(cutAfter).toBeLessThan(5000);

            await wsDone;
            expect(frames.at(-1)).toMatchObject({type: "done", id: "long-ws", finish_reason: "cancelled"});
            expect(await wsClosed).toBe(1001);

            expect(await serve.exited).toBe(0);
            expect(serve.stderr()).toContain("SIGTERM: shutting down; streams in flight get 1 s to finish");
            // persistSessions: the cached sequences were written for the next start.
            const [fingerprint] = await readdir(spillDir);
            expect((await readdir(path.join(spillDir, fingerprint!))).filter((file) => file.endsWith(".state")).length).toBeGreaterThan(0);
        } finally {
            serve.child.kill("SIGKILL");
        }
    });
});
