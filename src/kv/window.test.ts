import {describe, expect, it} from "vitest";
import {clampSinkTokens, slideRange, slidingWindow, truncationRange, truncationReserve} from "./window.js";

/** Small deterministic PRNG (mulberry32), so a failing case can be replayed. */
function random(seed: number) {
    let state = seed >>> 0;
    return (max: number) => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * (max + 1));
    };
}

const CASES = 5000;

describe("slidingWindow", () => {
    it("keeps sinks within [1, context/2] and the slide within the room after them", () => {
        const next = random(1);
        for (let i = 0; i < CASES; i++) {
            const contextSize = 8 + next(8192);
            const window = slidingWindow(contextSize, next(contextSize * 2), next(3) === 0 ? undefined : next(contextSize * 2));
            expect(window.sinkTokens).toBeGreaterThanOrEqual(1);
            expect(window.sinkTokens).toBeLessThanOrEqual(contextSize / 2);
            expect(window.slideTokens).toBeGreaterThanOrEqual(1);
            expect(window.sinkTokens + window.slideTokens).toBeLessThan(contextSize);
        }
    });

    it("defaults to a quarter of the context", () => {
        expect(slidingWindow(512, 4)).toEqual({sinkTokens: 4, slideTokens: 128});
        expect(clampSinkTokens(0, 512)).toBe(1);
        expect(clampSinkTokens(900, 512)).toBe(256);
    });
});

describe("slideRange", () => {
    it("erases right after the sinks, never a sink, and frees at least one token", () => {
        const next = random(2);
        for (let i = 0; i < CASES; i++) {
            const contextSize = 8 + next(4096);
            const window = slidingWindow(contextSize, next(contextSize), next(contextSize));
            const length = 1 + next(contextSize);
            const {start, end} = slideRange(length, window);
            expect(start).toBeGreaterThanOrEqual(0);
            expect(end).toBeGreaterThan(start);
            expect(end).toBeLessThanOrEqual(length);
            if (window.sinkTokens < length) {
                expect(start).toBe(window.sinkTokens);
                expect(end - start).toBe(Math.min(window.slideTokens, length - window.sinkTokens));
            }
        }
    });

    it("run as a sliding window, keeps the sinks and the newest tokens in order, in bounded space", () => {
        const next = random(3);
        for (let run = 0; run < 200; run++) {
            const contextSize = 16 + next(256);
            const window = slidingWindow(contextSize, next(contextSize), next(contextSize));
            // node-llama-cpp holds at most contextSize - 1 tokens and slides when full.
            const capacity = contextSize - 1;
            let sequence: number[] = [];
            let longest = 0;
            const total = capacity + next(contextSize * 4);
            for (let token = 0; token < total; token++) {
                if (sequence.length >= capacity) {
                    const {start, end} = slideRange(sequence.length, window);
                    sequence = [...sequence.slice(0, start), ...sequence.slice(end)];
                }
                sequence.push(token);
                longest = Math.max(longest, sequence.length);
            }
            expect(longest).toBe(capacity);
            const sinks = Math.min(window.sinkTokens, total);
            expect(sequence.slice(0, sinks)).toEqual(Array.from({length: sinks}, (_, index) => index));
            const tail = sequence.slice(sinks);
            expect(tail.at(-1)).toBe(total - 1);
            expect(tail.every((token, index) => index === 0 || token === tail[index - 1]! + 1)).toBe(true);
        }
    });
});

describe("truncation", () => {
    it("keeps the sinks and the newest prompt tokens, exactly `keep` of them", () => {
        const next = random(4);
        for (let i = 0; i < CASES; i++) {
            const contextSize = 8 + next(4096);
            const sinks = clampSinkTokens(next(contextSize), contextSize);
            const promptLength = 1 + next(contextSize * 3);
            const keep = contextSize - truncationReserve(contextSize, next(2) === 0 ? undefined : 1 + next(contextSize));
            const range = truncationRange(promptLength, keep, sinks);
            if (promptLength <= keep) {
                expect(range).toBeUndefined();
                continue;
            }
            expect(range).toBeDefined();
            const {start, end} = range!;
            expect(start).toBe(Math.min(sinks, keep - 1));
            expect(promptLength - (end - start)).toBe(keep);
            expect(end).toBeLessThan(promptLength);
        }
    });

    it("reserves max_tokens for the answer, at most a quarter of the context", () => {
        expect(truncationReserve(512)).toBe(128);
        expect(truncationReserve(512, 16)).toBe(16);
        expect(truncationReserve(512, 10_000)).toBe(128);
        expect(truncationReserve(2, 1)).toBe(1);
    });
});
