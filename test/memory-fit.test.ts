import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {InsufficientMemoryError, LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {isStories260K, testModelPath} from "./helpers/model.js";

/**
 * The real model with a low memory limit standing in for a machine without free memory: the
 * backend shrinks the context or refuses before llama.cpp allocates anything.
 */
let backend: LlamaCppBackend;
const logs: string[] = [];

beforeAll(async () => {
    backend = await LlamaCppBackend.create({gpu: false, logger: (level, message) => { if (level === "warn") logs.push(message); }});
});
afterAll(async () => {
    await backend?.dispose();
});

describe("memory fit before loading", () => {
    it.skipIf(!isStories260K)("refuses with the numbers when memoryFit is \"error\"", async () => {
        const failure = await backend.loadModel({path: testModelPath, id: "m", parallel: 4, contextSize: 2048, memoryFit: "error", memoryLimitBytes: 30_000_000})
            .catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(InsufficientMemoryError);
        expect((failure as Error).message).toMatch(/stories260K\.gguf needs 1\.2 MB for its weights and \d+(\.\d)? MB for 4 × 2048 tokens of context .* but only 30 MB of the memory limit is free/);
    });

    it.skipIf(!isStories260K)("counts a draft model's weights and context too", async () => {
        const failure = await backend.loadModel({path: testModelPath, id: "m", parallel: 4, contextSize: 2048, memoryFit: "error", memoryLimitBytes: 30_000_000, draftPath: testModelPath})
            .catch((error: unknown) => error);
        expect((failure as Error).message).toMatch(/stories260K\.gguf with draft stories260K\.gguf needs 2\.3 MB for its weights/);
    });

    // 30 MB is sized to stories260K's KV cache; the synthetic fallback model's 4 × 2048 tokens fit in it whole.
    it.skipIf(!isStories260K)("shrinks the context to what fits and still generates", async () => {
        const model = await backend.loadModel({path: testModelPath, id: "m", parallel: 4, contextSize: 2048, memoryFit: "shrink", memoryLimitBytes: 30_000_000});
        try {
            expect(model.description.contextSize).toBeLessThan(2048);
            expect(model.description.contextSize).toBeGreaterThanOrEqual(256);
            expect(model.description.memory).toMatchObject({requestedContextSize: 2048, freeBytes: 30_000_000});
            expect(model.description.memory!.modelBytes + model.description.memory!.contextBytes).toBeLessThanOrEqual(30_000_000);
            expect(logs.some((line) => line.includes(`Context lowered from 2048 to ${model.description.contextSize}`))).toBe(true);
            const prompt = model.renderCompletion("Once upon a time");
            let tokens = 0;
            for await (const _ of model.sequences[0]!.generate(prompt.tokens, {sampling: {temperature: 0}}))
                if (++tokens === 5) break;
            expect(tokens).toBe(5);
        } finally {
            await model.dispose();
        }
    });

    it("loads as asked when it fits", async () => {
        const model = await backend.loadModel({path: testModelPath, id: "m", parallel: 1, contextSize: 512});
        try {
            expect(model.description.contextSize).toBe(512);
            expect(model.description.memory?.requestedContextSize).toBeUndefined();
        } finally {
            await model.dispose();
        }
    });
});
