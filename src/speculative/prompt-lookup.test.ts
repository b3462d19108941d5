import {describe, expect, it} from "vitest";
import {lookupDraft} from "./prompt-lookup.js";
import {AcceptanceTracker} from "./acceptance.js";

describe("lookupDraft", () => {
    it("proposes what followed the latest earlier occurrence of the last n-gram", () => {
        //            0  1  2  3  4  5  6  7  8  9
        const text = [1, 2, 3, 4, 5, 9, 2, 3, 7, 1, 2, 3];
        // [1, 2, 3] occurred at 0: what followed it.
        expect(lookupDraft(text, 3)).toEqual([4, 5, 9]);
        // Only bigrams: [2, 3] occurred last at 6.
        expect(lookupDraft(text, 3, {maxNgram: 2, minNgram: 2})).toEqual([7, 1, 2]);
    });

    it("prefers longer n-grams and proposes nothing without a match", () => {
        expect(lookupDraft([5, 6, 7, 8, 6, 7, 9, 5, 6, 7], 2)).toEqual([8, 6]);
        expect(lookupDraft([1, 2, 3, 4], 4)).toEqual([]);
        expect(lookupDraft([], 4)).toEqual([]);
    });
});

describe("AcceptanceTracker", () => {
    it("measures plain decoding first, then drafts and adapts k to acceptance", () => {
        const tracker = new AcceptanceTracker({initialK: 2, maxK: 4, probeTokens: 2});
        expect(tracker.nextK()).toBe(0);
        tracker.plain(1, 1);
        tracker.plain(1, 1);
        expect(tracker.nextK()).toBe(2);
        tracker.step(2, 2, 1);
        tracker.step(3, 3, 1);
        expect(tracker.nextK()).toBe(4);
        tracker.step(4, 4, 1);
        expect(tracker.nextK()).toBe(4);
        tracker.step(4, 1, 1);
        tracker.step(4, 0, 1);
        expect(tracker.nextK()).toBe(3);
    });

    it("pauses drafting while it is slower than plain decoding, longer each time", () => {
        const tracker = new AcceptanceTracker({probeTokens: 4});
        for (let i = 0; i < 4; i++) tracker.plain(1, 1);  // plain: 1 token/ms
        tracker.step(4, 0, 2);                            // drafting: 0.5 token/ms
        expect(tracker.nextK()).toBe(0);
        for (let i = 0; i < 4; i++) tracker.plain(1, 1);
        expect(tracker.nextK()).toBeGreaterThan(0);
        tracker.step(4, 0, 2);
        for (let i = 0; i < 7; i++) tracker.plain(1, 1);
        expect(tracker.nextK()).toBe(0);                  // the second pause is twice as long
        tracker.plain(1, 1);
        expect(tracker.nextK()).toBeGreaterThan(0);
        tracker.step(4, 4, 1);                            // drafting now pays: 5 tokens/ms
        expect(tracker.nextK()).toBeGreaterThan(0);
        expect(tracker.accepted).toBe(4);
    });
});
