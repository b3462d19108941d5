import {getLlama} from "node-llama-cpp";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {BatchGatherer} from "../src/backends/llama-cpp/batch-gather.js";
import {testModelPath} from "./helpers/model.js";
import {startTestServer, type TestServer} from "./helpers/server.js";

describe("continuous batching with several streams", () => {
    let server: TestServer;
    beforeAll(async () => {
        server = await startTestServer({parallel: 4, contextSize: 2048});
    });
    afterAll(() => server?.stop());

    async function stream(prompt: string, maxTokens: number) {
        const started = performance.now();
        const response = await fetch(`${server.url}/v1/completions`, {
            method: "POST",
            body: JSON.stringify({model: server.modelId, prompt, max_tokens: maxTokens, temperature: 0, stream: true})
        });
        const reader = response.body!.getReader();
        let firstByteAt = 0;
        let text = "";
        for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
            if (firstByteAt === 0 && new TextDecoder().decode(chunk.value).includes("\"text\"")) firstByteAt = performance.now();
            text += new TextDecoder().decode(chunk.value);
        }
        return {firstTokenMs: firstByteAt - started, doneMs: performance.now() - started, text};
    }

    it("starts a new request between the running streams' steps, though its sequence must be erased first", async () => {
        // Every sequence ends up holding an earlier prompt's KV, which a new prompt has to erase.
        await Promise.all(["Tom", "Sue", "Ben", "Mia"].map((name) => stream(`${name} went to the park.`, 16)));

        const running = ["A dog ran", "The sun was", "Lily had a"].map((prompt) => stream(prompt, 1500));
        await new Promise((resolve) => setTimeout(resolve, 100));
        const latecomer = await stream("Once upon a time there was a frog", 8);
        const others = await Promise.all(running);

        expect(latecomer.text).toContain("[DONE]");
        // It was served while the long streams were still decoding, not after them.
        for (const other of others)
            expect(latecomer.firstTokenMs + 100).toBeLessThan(other.doneMs);
        expect(server.runtime.health().status).toBe("ready");
    });
});

describe("BatchGatherer", () => {
    it("hooks the node-llama-cpp this project pins (so an upgrade that moves the internals fails here, not silently)", async () => {
        const llama = await getLlama({gpu: false, build: "never", logLevel: "error" as never});
        const model = await llama.loadModel({modelPath: testModelPath});
        const context = await model.createContext({contextSize: 256, sequences: 2, threads: 1});
        try {
            expect(BatchGatherer.install(context)).toBeInstanceOf(BatchGatherer);
        } finally {
            await context.dispose();
            await model.dispose();
            await llama.dispose();
        }
    });

    /** node-llama-cpp's queue as the gatherer sees it; the batch loop itself is node-llama-cpp's. */
    function fakeContext() {
        const queue: {sequenceId: number}[] = [];
        const context = {
            _queuedDecodes: queue,
            _queuedDecodeSequenceIds: new Set<number>(),
            scheduled: 0,
            _scheduleDecode() {
                this.scheduled++;
            },
            afterBatch: [] as ((length: number) => unknown)[],
            _decodeTokens(params: {sequenceId: number; afterBatchAction?: (length: number) => unknown}) {
                queue.push({sequenceId: params.sequenceId});
                this._queuedDecodeSequenceIds.add(params.sequenceId);
                this.afterBatch.push(params.afterBatchAction!);
                return new Promise(() => {});
            }
        };
        const gatherer = BatchGatherer.install(context as never)!;
        return {context, gatherer, queue: (...ids: number[]) => ids.forEach((sequenceId) => void context._decodeTokens({sequenceId}))};
    }

    it("keeps the queue in sequence order (llama.cpp splits a batch at the first out-of-order sequence)", () => {
        const {context, queue} = fakeContext();
        queue(2, 3, 0, 1);
        expect(context._queuedDecodes.map((decode) => decode.sequenceId)).toEqual([0, 1, 2, 3]);
    });

    it("waits after a batch for generating streams that have not queued yet, but not for ever", async () => {
        const {context, gatherer, queue} = fakeContext();
        const ends = [0, 1, 2].map(() => gatherer.begin());
        queue(0, 1);
        const wait = context.afterBatch[0]!(1);
        expect(wait).toBeInstanceOf(Promise);
        queueMicrotask(() => queue(2)); // before the wait looks again, however loaded the machine
        await wait;
        expect(gatherer.stats.waits).toBe(1);
        expect(context._queuedDecodes).toHaveLength(3);

        ends[2]!();
        ends[2]!(); // ending twice counts once
        expect(context.afterBatch[0]!(1)).toBeUndefined(); // all generating sequences (2) are queued
        const started = performance.now();
        const another = gatherer.begin();
        await context.afterBatch[0]!(1); // a third stream that never queues: bounded wait
        expect(performance.now() - started).toBeLessThan(200);
        another();
    });

    it("steps the queue aside for work that needs the context lock, and queues it again afterwards", async () => {
        const {context, gatherer, queue} = fakeContext();
        queue(0, 1);
        let release!: () => void;
        const work = gatherer.exclusive(5, () => new Promise<void>((resolve) => release = resolve));
        context.afterBatch[0]!(1);
        // Emptied: node-llama-cpp's batch loop ends and the lock passes to the waiting work.
        expect(context._queuedDecodes).toHaveLength(0);
        expect(context._queuedDecodeSequenceIds.size).toBe(0);
        queue(3);
        release();
        await work;
        expect(context._queuedDecodes.map((decode) => decode.sequenceId)).toEqual([0, 1, 3]);
        expect([...context._queuedDecodeSequenceIds].sort()).toEqual([0, 1, 3]);
        expect(context.scheduled).toBe(1);
    });

    it("lets a queued decode of the sequence being edited go first (its positions are fixed)", async () => {
        const {context, gatherer, queue} = fakeContext();
        queue(0, 1);
        let release!: () => void;
        const work = gatherer.exclusive(1, () => new Promise<void>((resolve) => release = resolve));
        context.afterBatch[0]!(1);
        expect(context._queuedDecodes.map((decode) => decode.sequenceId)).toEqual([0, 1]);
        expect(gatherer.stats.conflicts).toBe(1);
        release();
        await work;
    });
});

describe("a state file that fails to load", () => {
    it("leaves the sequence usable: llama.cpp's old cells are dropped too", async () => {
        const {LlamaCppBackend} = await import("../src/backends/llama-cpp/backend.js");
        const backend = await LlamaCppBackend.create({gpu: false, logger: () => {}});
        const model = await backend.loadModel({path: testModelPath, id: "m", parallel: 2, contextSize: 256, threads: 1});
        try {
            const [sequence] = model.sequences;
            const generate = async (prompt: number[]) => {
                const tokens: number[] = [];
                for await (const {token} of sequence!.generate(prompt, {sampling: {temperature: 0}})) {
                    tokens.push(token);
                    if (tokens.length >= 16) break;
                }
                return tokens;
            };
            const prompt = [1, 403, 407, 261, 378];
            const before = await generate(prompt);
            await expect(sequence!.loadState("/nonexistent/edge-llm.state")).rejects.toThrow();
            expect(sequence!.cachedTokens).toEqual([]);
            expect(await generate(prompt)).toEqual(before);
        } finally {
            await model.dispose();
        }
    });
});
