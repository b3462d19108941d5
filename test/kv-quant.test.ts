import {rm} from "node:fs/promises";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {Runtime} from "../src/runtime/runtime.js";
import {isStories260K, testModelPath} from "./helpers/model.js";
import {writeRegroupedModel} from "./helpers/regrouped-model.js";
import {startTestServer} from "./helpers/server.js";

/**
 * Quantized KV caches. stories260K's heads (8 values) cannot hold q8_0/q4_0 blocks (32), so it
 * must fail to load with a clear error; the same weights regrouped into heads of 32 load and run.
 */

let regrouped: string;

beforeAll(async () => {
    regrouped = await writeRegroupedModel(testModelPath);
});
afterAll(async () => {
    if (regrouped != null) await rm(regrouped, {force: true});
});

/** A runtime of its own (disposing a runtime disposes its backend); disposed when loading fails. */
async function load(path: string, kvCacheType: "f16" | "q8_0" | "q4_0", policy?: "slide") {
    const runtime = new Runtime(await LlamaCppBackend.create({gpu: false}), {contextOverflow: {policy}});
    try {
        const description = await runtime.load({path, id: "m", parallel: 1, contextSize: 256, kvCacheType});
        return {runtime, description};
    } catch (error) {
        await runtime.dispose();
        throw error;
    }
}

describe.skipIf(!isStories260K)("kvCacheType", () => {
    it("f16 by default, with its size per token in the description (/health)", async () => {
        const server = await startTestServer({parallel: 1});
        try {
            const health = await (await fetch(`${server.url}/health`)).json() as {model: Record<string, unknown>};
            // 5 layers × 4 KV heads × 8 values × (K + V) × 2 bytes
            expect(health.model).toMatchObject({kvCacheType: "f16", kvBytesPerToken: 640, canShiftContext: true});
        } finally {
            await server.stop();
        }
    });

    it("q8_0 and q4_0 refuse a model whose heads are not a multiple of 32, saying why", async () => {
        for (const type of ["q8_0", "q4_0"] as const)
            await expect(load(testModelPath, type))
                .rejects.toThrow(new RegExp(`KV cache type ${type} needs attention heads whose size is a multiple of 32; this model's heads have 8`));
    });

    it("q8_0 loads a model with heads of 32 and generates text, up to a full context", async () => {
        const {runtime, description} = await load(regrouped, "q8_0");
        try {
            // 5 layers × 1 KV head × 32 values × (K + V) × 34/32 bytes
            expect(description).toMatchObject({kvCacheType: "q8_0", kvBytesPerToken: 340, canShiftContext: false});
            const stream = await runtime.generate({input: {kind: "completion", prompt: "Once upon a time"}, sampling: {temperature: 0}, stop: []});
            let text = "";
            let finish;
            for await (const event of stream)
                if (event.type === "delta") text += event.text;
                else finish = event;
            expect(text.trim().length).toBeGreaterThan(20);
            // Ending at a full context must not shift the quantized keys (that crashes llama.cpp).
            expect(finish).toMatchObject({finishReason: "length", usage: {completionTokens: description.contextSize - stream.promptTokens}});
        } finally {
            await runtime.dispose();
        }
    });

    it("refuses slide with a quantized cache: at load for the server default, with 400 per request", async () => {
        await expect(load(regrouped, "q8_0", "slide")).rejects.toThrow(/contextOverflow "slide" needs a KV cache that can be shifted/);
        const {runtime} = await load(regrouped, "q4_0");
        try {
            await expect(runtime.generate({
                input: {kind: "completion", prompt: "Once"}, sampling: {temperature: 0}, maxTokens: 8, stop: [], contextOverflow: "slide"
            })).rejects.toMatchObject({code: "invalid_request", param: "context_overflow"});
        } finally {
            await runtime.dispose();
        }
    });
});
