import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {getLlama, readGgufFileInfo, type Llama, type LlamaContext, type LlamaModel, type Token} from "node-llama-cpp";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {writeDeepTarget, writeDeepTargetFixtures, type DeepTargetFixtures} from "../scripts/fixtures/deep-target.js";
import {isStories260K, testModelPath} from "./helpers/model.js";

type Loaded = {model: LlamaModel; context: LlamaContext};

let dir: string;
let fixtures: DeepTargetFixtures;
let llama: Llama;
const loaded: Record<"original" | "deep" | "noisy", Loaded> = {} as never;

beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "deep-target-"));
    fixtures = await writeDeepTargetFixtures({source: testModelPath, outDir: dir});
    llama = await getLlama({gpu: false, build: "never", logLevel: "error" as never});
    for (const [name, modelPath] of [["original", testModelPath], ["deep", fixtures.deep], ["noisy", fixtures.noisy]] as const) {
        const model = await llama.loadModel({modelPath});
        loaded[name] = {model, context: await model.createContext({contextSize: 256, threads: {ideal: 1, min: 1}, flashAttention: false})};
    }
});

afterAll(async () => {
    for (const {model, context} of Object.values(loaded)) {
        await context.dispose();
        await model.dispose();
    }
    await llama?.dispose();
    await rm(dir, {recursive: true, force: true});
});

async function greedy({model, context}: Loaded, count = 64, prompt = "Once upon a time") {
    const sequence = context.getSequence();
    try {
        const tokens: number[] = [];
        let first = 0;
        for await (const token of sequence.evaluate([model.tokens.bos!, ...model.tokenize(prompt)] as Token[], {temperature: 0})) {
            if (tokens.length === 0) first = performance.now();
            tokens.push(token);
            if (tokens.length >= count) break;
        }
        return {tokens, tokensPerSecond: (tokens.length - 1) / ((performance.now() - first) / 1000)};
    } finally {
        sequence.dispose();
    }
}

describe.skipIf(!isStories260K)("deep-target fixtures", () => {
    it("appends 15 layers to stories260K's 5", async () => {
        const info = await readGgufFileInfo(fixtures.deep, {logWarnings: false});
        expect(info.architectureMetadata.block_count).toBe(20);
        expect(info.tensorInfo!.filter((tensor) => tensor.name.startsWith("blk.19."))).toHaveLength(9);
    });

    // How much slower it is belongs to the benchmark (scripts/bench/speculation.ts), not to a timed test.
    it("decodes the same 64 greedy tokens as stories260K", async () => {
        const original = await greedy(loaded.original);
        const deep = await greedy(loaded.deep);
        expect(original.tokens).toHaveLength(64);
        expect(deep.tokens).toEqual(original.tokens);
    });

    it("with noise, agrees on the first tokens and differs within 64", async () => {
        const original = (await greedy(loaded.original)).tokens;
        const noisy = (await greedy(loaded.noisy)).tokens;
        const firstDifference = noisy.findIndex((token, index) => token !== original[index]);
        expect(firstDifference).toBeGreaterThanOrEqual(4);
        expect(firstDifference).toBeLessThan(64);
    });

    it("can pad every FFN with zero units (memory-bound decode) and still decode the same tokens", async () => {
        const {path: modelPath} = await writeDeepTarget({source: testModelPath, target: path.join(dir, "wide.gguf"), extraLayers: 2, ffnLength: 1024});
        const info = await readGgufFileInfo(modelPath, {logWarnings: false});
        expect(info.architectureMetadata.feed_forward_length).toBe(1024);
        expect(info.tensorInfo!.find((tensor) => tensor.name === "blk.0.ffn_down.weight")?.dimensions).toEqual([1024, 64]);
        const model = await llama.loadModel({modelPath});
        const wide = {model, context: await model.createContext({contextSize: 256, threads: {ideal: 1, min: 1}, flashAttention: false})};
        try {
            expect((await greedy(wide)).tokens).toEqual((await greedy(loaded.original)).tokens);
        } finally {
            await wide.context.dispose();
            await model.dispose();
        }
    });
});
