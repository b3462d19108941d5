import {describe, expect, it} from "vitest";
import {RateLimiter} from "./rate-limit.js";

function clock() {
    let now = 0;
    return {now: () => now, advance: (ms: number) => { now += ms; }};
}

describe("RateLimiter (token bucket)", () => {
    it("allows a burst, then refuses with the seconds until the next token", () => {
        const time = clock();
        const limiter = new RateLimiter({requestsPerMinute: 60, burst: 3, now: time.now});
        expect([1, 2, 3].map(() => limiter.take("a").allowed)).toEqual([true, true, true]);
        expect(limiter.take("a")).toEqual({allowed: false, retryAfterSeconds: 1});
        time.advance(999);
        expect(limiter.take("a").allowed).toBe(false);
        time.advance(1);
        expect(limiter.take("a").allowed).toBe(true);
    });

    it("refills at the sustained rate and never above the burst", () => {
        const time = clock();
        const limiter = new RateLimiter({requestsPerMinute: 6, burst: 2, now: time.now});
        limiter.take("a");
        limiter.take("a");
        const refused = limiter.take("a");
        expect(refused).toEqual({allowed: false, retryAfterSeconds: 10});
        time.advance(60_000);
        expect([1, 2, 3].map(() => limiter.take("a").allowed)).toEqual([true, true, false]);
    });

    it("keeps one bucket per client", () => {
        const limiter = new RateLimiter({requestsPerMinute: 60, burst: 1, now: () => 0});
        expect(limiter.take("a").allowed).toBe(true);
        expect(limiter.take("a").allowed).toBe(false);
        expect(limiter.take("b").allowed).toBe(true);
    });

    it("bounds its memory: idle (full) buckets go first, then the least recently used", () => {
        const time = clock();
        const limiter = new RateLimiter({requestsPerMinute: 60, burst: 1, maxClients: 3, now: time.now});
        for (const client of ["a", "b", "c"]) limiter.take(client);
        time.advance(500);
        limiter.take("d");
        expect(limiter.clients).toBe(3);
        // "a" was the least recently used: it comes back with a full bucket.
        expect(limiter.take("a").allowed).toBe(true);
        time.advance(10_000);
        limiter.take("e");
        expect(limiter.clients).toBeLessThanOrEqual(3);
    });

    it("defaults the burst to a tenth of the per-minute rate and rejects nonsense", () => {
        expect(new RateLimiter({requestsPerMinute: 600}).burst).toBe(60);
        expect(new RateLimiter({requestsPerMinute: 5}).burst).toBe(1);
        expect(() => new RateLimiter({requestsPerMinute: 0})).toThrow(RangeError);
    });
});
