import {describe, expect, it} from "vitest";
import {blockHashes, commonPrefixLength, hashBlock} from "./block-hash.js";
import {PrefixIndex} from "./prefix-index.js";

const random = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

describe("chained block hashes", () => {
    it("hash full blocks only, and differ by parent, tokens and model", () => {
        expect(blockHashes([1, 2, 3, 4, 5], 2, "m")).toHaveLength(2);
        const a = hashBlock(null, [1, 2], "m");
        expect(hashBlock(null, [1, 2], "m")).toBe(a);
        expect(hashBlock(null, [1, 2], "other model")).not.toBe(a);
        expect(hashBlock(null, [2, 1], "m")).not.toBe(a);
        expect(hashBlock(a, [3, 4], "m")).not.toBe(hashBlock(null, [3, 4], "m"));
    });

    it("equal hashes at block i mean equal tokens up to block i (random token lists)", () => {
        const next = random(7);
        for (let trial = 0; trial < 200; trial++) {
            const base = Array.from({length: 40}, () => Math.floor(next() * 4));
            const other = [...base];
            const flip = Math.floor(next() * 40);
            other[flip] = (other[flip]! + 1) % 4;
            const [x, y] = [blockHashes(base, 8, "m"), blockHashes(other, 8, "m")];
            const sameBlocks = x.findIndex((hash, index) => hash !== y[index]);
            expect(sameBlocks).toBe(Math.floor(flip / 8));
            expect(commonPrefixLength(base, other)).toBe(flip);
        }
    });
});

describe("PrefixIndex", () => {
    const hashes = (tokens: number[]) => blockHashes(tokens, 4, "m");

    it("finds the entries with the longest run of matching blocks", () => {
        const index = new PrefixIndex<string>();
        index.set("short", hashes([1, 2, 3, 4]));
        index.set("long", hashes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
        index.set("other", hashes([9, 9, 9, 9, 5, 6, 7, 8]));
        expect(index.longest(hashes([1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]))).toEqual({keys: ["long"], blocks: 2});
        expect(index.longest(hashes([1, 2, 3, 4, 0, 0, 0, 0]))).toEqual({keys: ["short", "long"], blocks: 1});
        expect(index.longest(hashes([5, 6, 7, 8]))).toEqual({keys: [], blocks: 0});
        expect(index.longest(hashes([1, 2, 3, 4, 5, 6, 7, 8]), (key) => key !== "long")).toEqual({keys: ["short"], blocks: 1});
    });

    it("forgets deleted and replaced entries", () => {
        const index = new PrefixIndex<string>();
        index.set("a", hashes([1, 2, 3, 4, 5, 6, 7, 8]));
        index.set("a", hashes([9, 9, 9, 9]));
        expect(index.longest(hashes([1, 2, 3, 4])).blocks).toBe(0);
        index.delete("a");
        expect(index.size).toBe(0);
        expect(index.longest(hashes([9, 9, 9, 9])).blocks).toBe(0);
    });

    it("agrees with a brute-force scan on random data", () => {
        const next = random(11);
        const entries = Array.from({length: 30}, () => Array.from({length: 4 * (1 + Math.floor(next() * 6))}, () => Math.floor(next() * 3)));
        const index = new PrefixIndex<number>();
        entries.forEach((tokens, key) => index.set(key, hashes(tokens)));
        for (let trial = 0; trial < 200; trial++) {
            const query = Array.from({length: 24}, () => Math.floor(next() * 3));
            const fullBlocks = (tokens: number[]) => Math.floor(commonPrefixLength(tokens, query) / 4);
            const best = Math.max(...entries.map(fullBlocks));
            const match = index.longest(hashes(query));
            expect(match.blocks).toBe(best);
            if (best > 0)
                expect(match.keys.sort()).toEqual(entries.flatMap((tokens, key) => fullBlocks(tokens) === best ? [key] : []).sort());
        }
    });
});
