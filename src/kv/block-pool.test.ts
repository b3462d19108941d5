import {describe, expect, it} from "vitest";
import {BlockPool} from "./block-pool.js";

describe("BlockPool", () => {
    it("counts used, cached and free blocks per sequence", () => {
        const pool = new BlockPool(2, 8, 16);
        expect(pool.counts()).toEqual({blockSize: 16, total: 16, used: 0, cached: 0, free: 16});
        pool.reserve(0, 100);
        expect(pool.counts()).toMatchObject({used: 7, cached: 0, free: 9});
        pool.release(0, 40);
        expect(pool.counts()).toMatchObject({used: 0, cached: 3, free: 13});
        pool.reserve(1, 10_000);
        expect(pool.counts()).toMatchObject({used: 8, cached: 3, free: 5});
    });

    it("never reports more than it has, whatever the sequence of events", () => {
        const pool = new BlockPool(4, 10, 8);
        let seed = 3;
        const next = () => (seed = (seed * 16807) % 2147483647) % 200;
        for (let step = 0; step < 1000; step++) {
            const sequence = next() % 4;
            if (next() % 2 === 0) pool.reserve(sequence, next());
            else pool.release(sequence, next());
            const counts = pool.counts();
            expect(counts.used + counts.cached + counts.free).toBe(40);
            expect(counts.free).toBeGreaterThanOrEqual(0);
        }
    });
});
