import {mkdtemp, readFile, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {pickFlashAttention, pickThreads, threadCandidates, type TunedThreads} from "../src/backends/llama-cpp/thread-tuning.js";
import {testModelPath} from "./helpers/model.js";

describe("thread candidates and choice", () => {
    it("tries 1, powers of two and every core", () => {
        expect(threadCandidates(1)).toEqual([1]);
        expect(threadCandidates(2)).toEqual([1, 2]);
        expect(threadCandidates(6)).toEqual([1, 2, 4, 6]);
        expect(threadCandidates(8)).toEqual([1, 2, 4, 8]);
    });

    it("takes more threads only when they are clearly faster", () => {
        expect(pickThreads([{threads: 1, tokensPerSecond: 3000}, {threads: 2, tokensPerSecond: 150}])).toBe(1);
        expect(pickThreads([{threads: 1, tokensPerSecond: 30}, {threads: 2, tokensPerSecond: 31}])).toBe(1);
        expect(pickThreads([{threads: 1, tokensPerSecond: 30}, {threads: 2, tokensPerSecond: 45}, {threads: 4, tokensPerSecond: 46}])).toBe(2);
        // Every core decoding leaves none for streaming the tokens: a tiny model's gain is gone, a big one's is not.
        expect(pickThreads([{threads: 1, tokensPerSecond: 4621}, {threads: 2, tokensPerSecond: 5346}], 2)).toBe(1);
        expect(pickThreads([{threads: 1, tokensPerSecond: 4621}, {threads: 2, tokensPerSecond: 5346}])).toBe(2);
        expect(pickThreads([{threads: 1, tokensPerSecond: 30}, {threads: 2, tokensPerSecond: 45}], 2)).toBe(2);
    });

    it("keeps flash attention on unless a typical request (prompt and answer alike) is clearly faster without it", () => {
        // A tie within the noise: on (llama.cpp's default, and faster for batched streams).
        expect(pickFlashAttention([{flashAttention: false, tokensPerSecond: 46, prefillTokensPerSecond: 132}, {flashAttention: true, tokensPerSecond: 45, prefillTokensPerSecond: 128}])).toBe(true);
        // 1B-shaped Q4_0 here, 2 threads: decode the same, prefill faster.
        expect(pickFlashAttention([{flashAttention: false, tokensPerSecond: 47, prefillTokensPerSecond: 120}, {flashAttention: true, tokensPerSecond: 47, prefillTokensPerSecond: 136}])).toBe(true);
        // stories260K a few hundred tokens in: decode much slower, prefill a little faster.
        expect(pickFlashAttention([{flashAttention: false, tokensPerSecond: 2700, prefillTokensPerSecond: 5000}, {flashAttention: true, tokensPerSecond: 1500, prefillTokensPerSecond: 5500}])).toBe(false);
        // A failed measurement never wins.
        expect(pickFlashAttention([{flashAttention: false, tokensPerSecond: 40, prefillTokensPerSecond: 100}, {flashAttention: true, tokensPerSecond: 0, prefillTokensPerSecond: 0}])).toBe(false);
    });
});

describe("autotuning at load", () => {
    let dir: string;
    let backend: LlamaCppBackend;

    beforeAll(async () => {
        dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-threads-"));
        backend = await LlamaCppBackend.create({gpu: false});
    });
    afterAll(async () => {
        await backend?.dispose();
        await rm(dir, {recursive: true, force: true});
    });

    it("measures every candidate once per model and machine, then reuses the cached choice", async () => {
        const cacheFile = path.join(dir, "tuning.json");
        const first = await backend.loadModel({path: testModelPath, id: "m", parallel: 1, contextSize: 256, threadTuning: {cacheFile}});
        const {threads, threadsReason} = first.description;
        await first.dispose();
        const cached = JSON.parse(await readFile(cacheFile, "utf8")) as Record<string, TunedThreads>;
        const [entry] = Object.values(cached);
        expect(Object.keys(cached)).toHaveLength(1);
        expect(entry!.threads).toBe(threads);
        expect(entry!.measurements.map((measurement) => measurement.threads)).toEqual(threadCandidates(backend.llama.cpuMathCores));
        expect(entry!.measurements.every((measurement) => measurement.tokensPerSecond > 0)).toBe(true);
        // Flash attention off and on, at the chosen count, a few hundred tokens into a context.
        expect(entry!.flashAttentionMeasurements!.map((measurement) => measurement.flashAttention)).toEqual([false, true]);
        expect(entry!.flashAttentionMeasurements!.every((measurement) => measurement.tokensPerSecond > 0)).toBe(true);
        expect(entry!.flashAttention).toBe(first.description.flashAttention);
        expect(threadsReason).toMatch(/^autotuned: 1: \d+ tok\/s/);
        expect(threadsReason).toMatch(/; flash attention at \d+ threads?, 192 tokens in: off \d+ tok\/s \(prefill \d+\), on \d+ tok\/s \(prefill \d+\): (on|off)$/);

        const second = await backend.loadModel({path: testModelPath, id: "m", parallel: 1, contextSize: 256, threadTuning: {cacheFile}});
        expect(second.description.threads).toBe(threads);
        expect(second.description.threadsReason).toMatch(/^autotuned \(cached\)/);
        expect(second.description.flashAttention).toBe(first.description.flashAttention);
        await second.dispose();
    });

    it("leaves an explicit thread count alone", async () => {
        const cacheFile = path.join(dir, "explicit.json");
        const model = await backend.loadModel({path: testModelPath, id: "m", parallel: 1, contextSize: 256, threads: 1, threadTuning: {cacheFile}});
        expect(model.description.threadsReason).toBe("set by --threads / config");
        await model.dispose();
        await expect(readFile(cacheFile)).rejects.toThrow();
    });
});
