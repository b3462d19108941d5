import {getLlama, type Llama, type LlamaContext, type LlamaModel} from "node-llama-cpp";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {BatchGatherer} from "../src/backends/llama-cpp/batch-gather.js";
import {loadDecodeLoopAddon, type DecodeLoopAddon} from "../src/backends/llama-cpp/native-loop/addon.js";
import {NativeDecodeLoop, NO_CONTENTION} from "../src/backends/llama-cpp/native-loop/decode-loop.js";
import {LlamaCppSequence} from "../src/backends/llama-cpp/sequence.js";
import type {SequenceGenerateOptions} from "../src/backends/backend.js";
import {isStories260K, testModelPath} from "./helpers/model.js";
import {startTestServer} from "./helpers/server.js";

/**
 * The native decode loop against node-llama-cpp's own loop on the real model: same tokens, same
 * KV bookkeeping, and a clean hand-over when another stream needs the context.
 */
describe("native decode loop", () => {
    let llama: Llama;
    let model: LlamaModel;
    let addon: DecodeLoopAddon;

    beforeAll(async () => {
        const loaded = await loadDecodeLoopAddon();
        // This machine (and CI's) has a C++ compiler: a missing addon here is a failure, not a skip.
        expect(loaded.status).toMatchObject({available: true});
        addon = loaded.addon!;
        llama = await getLlama({gpu: false, build: "never", logLevel: "error" as never});
        model = await llama.loadModel({modelPath: testModelPath});
    }, 120_000);
    afterAll(async () => {
        await model?.dispose();
        await llama?.dispose();
    });

    async function withContext<T>(sequences: number, work: (context: LlamaContext, loop: NativeDecodeLoop, gatherer?: BatchGatherer) => Promise<T>): Promise<T> {
        const context = await model.createContext({contextSize: 512 * sequences, sequences, threads: 1, flashAttention: false});
        try {
            const {loop, reason} = NativeDecodeLoop.attach(addon, context);
            expect(reason).toBeUndefined();
            return await work(context, loop!, sequences > 1 ? BatchGatherer.install(context) : undefined);
        } finally {
            await context.dispose();
        }
    }

    const prompt = () => model.tokenize("Once upon a time, there was a little dog");

    async function collect(sequence: LlamaCppSequence, tokens: readonly number[], options: SequenceGenerateOptions, stopAfter = Number.POSITIVE_INFINITY) {
        const out: number[] = [];
        // As the runtime does: `maxTokens` is a hint, the consumer stops there.
        const limit = Math.min(stopAfter, options.maxTokens ?? Number.POSITIVE_INFINITY);
        for await (const {token} of sequence.generate(tokens, options)) {
            out.push(token);
            if (out.length >= limit) break;
        }
        return out;
    }

    it("samples exactly the tokens node-llama-cpp's loop samples, greedy and with its sampler chain", async () => {
        const sampling = {temperature: 0.9, topK: 30, topP: 0.9, minP: 0.02, seed: 7};
        const {greedy, sampled} = await withContext(1, async (context, loop) => {
            const sequence = context.getSequence();
            const native = new LlamaCppSequence(0, sequence, model, {nativeLoop: loop});
            const greedy = await collect(native, prompt(), {sampling: {temperature: 0}, maxTokens: 150});
            // The prompt fits one batch: it is decoded natively too, with every token after it.
            expect(loop.stats).toMatchObject({runs: 1, tokens: 150});
            // A seeded request stays on node-llama-cpp's loop (see sequence.ts), so the chain is checked on the loop itself.
            await native.truncate(0);
            await sequence.evaluateWithoutGeneratingNewTokens(prompt().slice(0, -1));
            const sampled: number[] = [];
            for await (const token of loop.generate(sequence, [prompt().at(-1)!], {sampling, maxTokens: 150, contention: NO_CONTENTION, truncate: async () => {}}))
                sampled.push(token);
            return {greedy, sampled};
        });
        await withContext(1, async (context) => {
            const sequence = context.getSequence();
            const binding = new LlamaCppSequence(0, sequence, model);
            expect(await collect(binding, prompt(), {sampling: {temperature: 0}, maxTokens: 150})).toEqual(greedy);
            await binding.truncate(0);
            const fromBinding: number[] = [];
            for await (const token of sequence.evaluate(prompt(), sampling)) {
                fromBinding.push(token);
                if (fromBinding.length >= 150) break;
            }
            expect(sampled).toEqual(fromBinding);
        });
        expect(greedy.length).toBe(150);
        expect(new Set(sampled).size).toBeGreaterThan(10);
    });

    it("yields exactly node-llama-cpp's tokens over many runs to a consumer that falls behind now and then", async () => {
        // A consumer slower than the decode (a 1 ms pause every 5 tokens) leaves tokens queued when a
        // run ends (backpressure or its 20 ms slice); they must come out first, in order, then the
        // next run's.
        const bursty = async (sequence: LlamaCppSequence) => {
            const out: number[] = [];
            for await (const {token} of sequence.generate(prompt(), {sampling: {temperature: 0}, maxTokens: 400})) {
                out.push(token);
                if (out.length % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
            }
            return out;
        };
        const native = await withContext(1, async (context, loop) => {
            const tokens = await bursty(new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop}));
            expect(loop.stats).toMatchObject({runs: 1, tokens: 400, handovers: 0});
            return tokens;
        });
        const reference = await withContext(1, async (context) => collect(new LlamaCppSequence(0, context.getSequence(), model), prompt(), {sampling: {temperature: 0}, maxTokens: 400}));
        expect(native).toHaveLength(400);
        expect(native).toEqual(reference);
    });

    it("decodes a prompt longer than a batch through node-llama-cpp's evaluate, then natively", async () => {
        const long = model.tokenize("Once upon a time, there was a little dog. The dog liked to play in the park with a big red ball every day.");
        const small = await model.createContext({contextSize: 512, sequences: 1, threads: 1, flashAttention: false, batchSize: 16});
        let fromNative: number[];
        try {
            const {loop} = NativeDecodeLoop.attach(addon, small);
            expect(loop!.maxInput).toBe(16);
            expect(long.length).toBeGreaterThan(16);
            fromNative = await collect(new LlamaCppSequence(0, small.getSequence(), model, {nativeLoop: loop}), long, {sampling: {temperature: 0}, maxTokens: 30});
            // The first token came out of evaluate's last batch; the loop made the rest.
            expect(loop!.stats).toMatchObject({runs: 1, tokens: 29});
        } finally {
            await small.dispose();
        }
        await withContext(1, async (context) => {
            expect(await collect(new LlamaCppSequence(0, context.getSequence(), model), long, {sampling: {temperature: 0}, maxTokens: 30})).toEqual(fromNative);
        });
    });

    it("keeps a prompt it decoded when the consumer takes only the first token", async () => {
        await withContext(1, async (context, loop) => {
            const native = new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop});
            const [first] = await collect(native, prompt(), {sampling: {temperature: 0}}, 1);
            // The prompt is in the cells; the first token was sampled, not decoded.
            expect(native.cachedTokens).toEqual(prompt());
            const next = await collect(native, [...prompt(), first!], {sampling: {temperature: 0}, maxTokens: 3});
            await withContext(1, async (fresh) => {
                expect(await collect(new LlamaCppSequence(0, fresh.getSequence(), model), [...prompt(), first!], {sampling: {temperature: 0}, maxTokens: 3})).toEqual(next);
            });
        });
    });

    it("leaves the cells and node-llama-cpp's token record as node-llama-cpp's loop does when the consumer stops early, so the next turn reuses them", async () => {
        await withContext(1, async (context, loop) => {
            const native = new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop});
            const first = await collect(native, prompt(), {sampling: {temperature: 0}}, 20);
            // The 20th token was handed over but not decoded, as in node-llama-cpp's evaluate.
            expect(native.cachedTokens).toEqual([...prompt(), ...first.slice(0, 19)]);

            const followUp = [...prompt(), ...first, ...model.tokenize(" Then")];
            let reused = -1;
            const more: number[] = [];
            for await (const generated of native.generate(followUp, {sampling: {temperature: 0}, maxTokens: 10})) {
                if (generated.reusedPromptTokens != null) reused = generated.reusedPromptTokens;
                more.push(generated.token);
            }
            expect(reused).toBe(prompt().length + 19);
            expect(more).toHaveLength(10);

            // The same follow-up on node-llama-cpp's loop from a fresh context yields the same tokens.
            await withContext(1, async (fresh) => {
                const binding = new LlamaCppSequence(0, fresh.getSequence(), model);
                expect(await collect(binding, followUp, {sampling: {temperature: 0}, maxTokens: 10})).toEqual(more);
            });
        });
    });

    it("gives its decode threads back when the consumer stops early, even if the context goes right after (a leak stalls every later decode)", async () => {
        // As the backend sets it: the thread budget is exactly what one context uses.
        const budget = llama.maxThreads;
        llama.maxThreads = 1;
        try {
            for (let round = 0; round < 3; round++) {
                // A stream cancelled mid-run, then its model unloaded at once.
                await withContext(1, async (context, loop) => {
                    const native = new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop});
                    expect(await collect(native, prompt(), {sampling: {temperature: 0}}, 3)).toHaveLength(3);
                });
            }
            await withContext(1, async (context, loop) => {
                const native = new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop});
                expect(await collect(native, prompt(), {sampling: {temperature: 0}, maxTokens: 40})).toHaveLength(40);
            });
        } finally {
            llama.maxThreads = budget;
        }
    }, 10_000);

    it("starts every run afresh after streams that stopped with tokens not yet taken", async () => {
        await withContext(1, async (context, loop) => {
            const native = new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop});
            for (let round = 0; round < 4; round++) {
                // The client goes quiet after one token, then leaves: the loop decodes ahead meanwhile.
                for await (const generated of native.generate(model.tokenize(`Round ${round}: once upon a time`), {sampling: {temperature: 0}})) {
                    void generated;
                    await new Promise((resolve) => setTimeout(resolve, 20));
                    break;
                }
            }
            expect(await collect(native, prompt(), {sampling: {temperature: 0}, maxTokens: 60})).toHaveLength(60);
        });
    }, 10_000);

    it("hands each run's tokens to its own stream, however quickly the next one starts (a late wake-up once fed them to the finished one)", async () => {
        await withContext(1, async (context, loop) => {
            const native = new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop});
            let expected: number[] | undefined;
            for (let round = 0; round < 60; round++) {
                const tokens = await collect(native, prompt(), {sampling: {temperature: 0}, maxTokens: 4});
                expected ??= tokens;
                expect(tokens).toEqual(expected);
            }
        });
    }, 15_000);

    it("hands a running stream over to node-llama-cpp's batches when a second stream starts, and takes it back when that one ends", async () => {
        await withContext(2, async (context, loop, gatherer) => {
            const a = new LlamaCppSequence(0, context.getSequence(), model, {nativeLoop: loop, gatherer});
            const b = new LlamaCppSequence(1, context.getSequence(), model, {nativeLoop: loop, gatherer});
            const aTokens: number[] = [];
            let startedB: Promise<number[]> | undefined;
            for await (const {token} of a.generate(prompt(), {sampling: {temperature: 0}, maxTokens: 300})) {
                aTokens.push(token);
                if (aTokens.length === 20) startedB = collect(b, model.tokenize("The cat sat"), {sampling: {temperature: 0}, maxTokens: 40});
            }
            const bTokens = await startedB!;
            expect(aTokens).toHaveLength(300);
            expect(bTokens).toHaveLength(40);
            expect(loop.stats.handovers).toBeGreaterThanOrEqual(1);
            // Native before b, batched while b ran, native again after.
            expect(loop.stats.runs).toBeGreaterThanOrEqual(2);
            // node-llama-cpp's record matches the cells of both sequences: each continues where it stopped.
            expect(a.cachedTokens).toEqual([...prompt(), ...aTokens.slice(0, -1)]);
            expect(b.cachedTokens).toEqual([...model.tokenize("The cat sat"), ...bTokens.slice(0, -1)]);
            const next = await collect(a, [...prompt(), ...aTokens], {sampling: {temperature: 0}, maxTokens: 5});
            expect(next).toHaveLength(5);
        });
    });
});

describe("native decode loop through the server", () => {
    it("is what decodes a lone stream, and /props says so", async () => {
        const server = await startTestServer({parallel: 2, contextSize: 1024});
        try {
            const props = await (await fetch(`${server.url}/props`)).json() as {runtime: {decode_loop: {kind: string} | null}};
            expect(props.runtime.decode_loop?.kind).toBe("native");
            const response = await fetch(`${server.url}/v1/completions`, {
                method: "POST",
                body: JSON.stringify({model: server.modelId, prompt: "Once upon a time", max_tokens: 64, temperature: 0})
            });
            const body = await response.json() as {choices: {text: string; finish_reason: string}[]; usage: {completion_tokens: number}};
            expect(body.usage.completion_tokens).toBe(64);
            expect(body.choices[0]!.finish_reason).toBe("length");
            // stories260K's tokens are mostly several characters; the synthetic fallback's may be one each.
            expect(body.choices[0]!.text.length).toBeGreaterThan(isStories260K ? 64 : 0);
        } finally {
            await server.stop();
        }
    });
});
