import {mkdtemp, readFile, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {pickThreads, threadCandidates} from "../src/backends/llama-cpp/thread-tuning.js";
import {testModelPath} from "./helpers/model.js";

describe("thread candidates and choice", () => {
    it("tries 1, powers of two and every core", () => {
        expect(threadCandidates(1)).toEqual([1]);
        expect(threadCandidates(2)).toEqual([1, 2]);
        expect(threadCandidates(6)).toEqual([1, 2, 4, 6]);
        expect(threadCandidates(8)).toEqual([1, 2, 4, 8]);
    });

    it("takes more threads only when they are clearly faster", () => {
        const threadsOf = (measurements: Parameters<typeof pickThreads>[0]) => pickThreads(measurements).threads;
        expect(threadsOf([{threads: 1, tokensPerSecond: 3000}, {threads: 2, tokensPerSecond: 150}])).toBe(1);
        expect(threadsOf([{threads: 1, tokensPerSecond: 30}, {threads: 2, tokensPerSecond: 31}])).toBe(1);
        expect(threadsOf([{threads: 1, tokensPerSecond: 30}, {threads: 2, tokensPerSecond: 45}, {threads: 4, tokensPerSecond: 46}])).toBe(2);
    });

    it("turns flash attention on only when it is clearly faster", () => {
        // 1B-shaped Q4_0 here: more threads and flash attention both pay.
        expect(pickThreads([
            {threads: 1, flashAttention: false, tokensPerSecond: 28}, {threads: 1, flashAttention: true, tokensPerSecond: 30},
            {threads: 2, flashAttention: false, tokensPerSecond: 44}, {threads: 2, flashAttention: true, tokensPerSecond: 48}
        ])).toEqual({threads: 2, flashAttention: true});
        // stories260K here: one thread, and flash attention slower.
        expect(pickThreads([
            {threads: 1, flashAttention: false, tokensPerSecond: 2700}, {threads: 1, flashAttention: true, tokensPerSecond: 1600},
            {threads: 2, flashAttention: false, tokensPerSecond: 150}, {threads: 2, flashAttention: true, tokensPerSecond: 140}
        ])).toEqual({threads: 1, flashAttention: false});
        expect(pickThreads([{threads: 1, flashAttention: false, tokensPerSecond: 100}, {threads: 1, flashAttention: true, tokensPerSecond: 103}]))
            .toEqual({threads: 1, flashAttention: false});
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
        const cached = JSON.parse(await readFile(cacheFile, "utf8")) as Record<string, {threads: number; flashAttention: boolean; measurements: {threads: number; flashAttention: boolean; tokensPerSecond: number}[]}>;
        const [entry] = Object.values(cached);
        expect(Object.keys(cached)).toHaveLength(1);
        expect(entry!.threads).toBe(threads);
        expect(entry!.flashAttention).toBe(first.description.flashAttention);
        // Every candidate count, with flash attention off and on.
        expect(entry!.measurements.map((measurement) => `${measurement.threads}/${measurement.flashAttention}`))
            .toEqual(threadCandidates(backend.llama.cpuMathCores).flatMap((count) => [`${count}/false`, `${count}/true`]));
        expect(entry!.measurements.every((measurement) => measurement.tokensPerSecond > 0)).toBe(true);
        expect(threadsReason).toMatch(/^autotuned: 1: \d+ tok\/s \(with flash attention: \d+ tok\/s\)/);
        expect(threadsReason).toMatch(/; flash attention (on|off)$/);

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
