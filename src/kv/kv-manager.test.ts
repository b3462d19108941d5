import {describe, expect, it} from "vitest";
import type {BackendSequence} from "../backends/backend.js";
import {KvManager} from "./kv-manager.js";

const blockSize = 4;

/** Sequences as the manager sees them: an index and the tokens their KV holds. */
function sequences(held: number[][]): BackendSequence[] {
    return held.map((cachedTokens, index) => ({index, cachedTokens}) as unknown as BackendSequence);
}

const manager = (count: number) => new KvManager(count, {blockSize, sequenceCapacity: 64, modelIdentity: "test"});

describe("KvManager.choose", () => {
    it("takes the sequence holding the prompt's prefix, however far from the busy ones", () => {
        const all = sequences([[1, 2], [], [], [5, 6, 7, 8, 9, 10]]);
        expect(manager(4).choose([all[1]!, all[2]!, all[3]!], [5, 6, 7, 8, 9, 10, 11]).index).toBe(3);
    });

    it("otherwise takes a free sequence next to a busy one, so concurrent streams stay consecutive for llama.cpp's batching", () => {
        const all = sequences([[], [], [], [], [], [], [], []]);
        // Sequences 2 and 3 are decoding; 0, 1 and 4–7 are free and empty.
        const free = all.filter((sequence) => sequence.index !== 2 && sequence.index !== 3);
        expect([1, 4]).toContain(manager(8).choose(free, [9, 9, 9]).index);
    });

    it("gives up a cache to join the running streams when decoding apart would cost more than the cache saves", () => {
        // Sequences 2 and 3 are decoding; 1 and 4 hold 3 blocks of an unrelated prompt, the rest are empty.
        const all = sequences([[], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7], [], [], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7], [], [], []]);
        const free = all.filter((sequence) => sequence.index !== 2 && sequence.index !== 3);
        // A one-token answer: keeping the cache is worth more than where it decodes.
        expect([0, 5, 6, 7]).toContain(manager(8).choose(free, [9, 9, 9], undefined, 1).index);
        // 16 tokens decoded apart cost ~32 prompt tokens of prefill, more than the 12 cached.
        expect([1, 4]).toContain(manager(8).choose(free, [9, 9, 9], undefined, 16).index);
    });

    it("prefers a sequence that bridges two runs of running streams", () => {
        const all = sequences([[], [], [], [], [], [], [], []]);
        // Sequences 2 and 4 are decoding (two micro-batches); 3 would make them one.
        const free = all.filter((sequence) => sequence.index !== 2 && sequence.index !== 4);
        expect(manager(8).choose(free, [9, 9, 9], undefined, 16).index).toBe(3);
    });

    it("does not give up a block of reusable prefix for adjacency", () => {
        const all = sequences([[], [], [], [], [], [1, 2, 3, 4, 5, 6]]);
        const free = all.filter((sequence) => sequence.index !== 2);
        expect(manager(6).choose(free, [1, 2, 3, 4, 5, 6, 7]).index).toBe(5);
    });
});
