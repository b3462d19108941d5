import {describe, expect, it} from "vitest";
import {chooseRecordedBuild, judgeComparison, PAYS_AT, requestMs, type RequestTiming} from "./build-comparison.js";
import type {BuildComparison, NativeBuildRecord} from "./native-build.js";

const timing = (decodeTokensPerSecond: number, prefillTokensPerSecond = Infinity): RequestTiming => ({decodeTokensPerSecond, prefillTokensPerSecond});

const record: NativeBuildRecord = {
    preset: "cpu-native", gpu: false, cmakeOptions: {GGML_NATIVE: "ON"}, builtAt: "2026-11-27T00:00:00.000Z", platform: "linux-x64", command: "x"
};

describe("native build against the prebuilt binary", () => {
    it("prices a request with as many prompt tokens as answer tokens", () => {
        expect(requestMs(timing(50))).toBe(20);
        expect(requestMs(timing(50, 200))).toBe(25);
        expect(requestMs(timing(0, 200))).toBe(Infinity);
    });

    it("pays when the median pair is at least 5% faster per request", () => {
        // Pair ratios 1.4, 0.9 (a noisy pair), 1.5: the median is 1.4.
        const pairs = [
            {prebuilt: timing(30), local: timing(42)},
            {prebuilt: timing(45), local: timing(40.5)},
            {prebuilt: timing(30), local: timing(45)}
        ];
        expect(judgeComparison(pairs)).toEqual({ratio: 1.4, pays: true});
        expect(judgeComparison([{prebuilt: timing(22), local: timing(23)}])).toEqual({ratio: 1.045, pays: false});
        expect(judgeComparison([{prebuilt: timing(20), local: timing(20 * PAYS_AT)}]).pays).toBe(true);
        // Faster decode, slower prefill: the request as a whole decides.
        expect(judgeComparison([{prebuilt: timing(50, 100), local: timing(55, 60)}]).pays).toBe(false);
        expect(() => judgeComparison([])).toThrow(/no requests/);
    });

    it("loads a recorded build unless it measured no faster; \"on\" loads it regardless", () => {
        const score = (decodeTokensPerSecond: number, prefillTokensPerSecond: number) => ({threads: 1, flashAttention: false, decodeTokensPerSecond, prefillTokensPerSecond});
        const slower: BuildComparison = {model: "m.gguf", measuredAt: "x", requests: 40, prebuilt: score(1619, 7000), local: score(1533, 6900), ratio: 0.947, pays: false};
        expect(chooseRecordedBuild(undefined, "auto")).toEqual({});
        expect(chooseRecordedBuild(record, "auto")).toEqual({record});
        expect(chooseRecordedBuild({...record, comparisonError: "timed out"}, "auto").record).toBeDefined();
        expect(chooseRecordedBuild({...record, comparison: {...slower, ratio: 1.3, pays: true}}, "auto").record).toBeDefined();

        const skipped = chooseRecordedBuild({...record, comparison: slower}, "auto");
        expect(skipped.record).toBeUndefined();
        expect(skipped.skipped).toBe("the local build \"cpu-native\" measured no faster than the prebuilt binary here " +
            "(m.gguf, 40 requests each: local 1,533 tok/s decode, 6,900 prefill against prebuilt 1,619 tok/s decode, 7,000 prefill: " +
            "0.947× the prebuilt binary's speed per request; it must be 1.05×), so the prebuilt binary runs; nativeBuild \"on\" loads it anyway");
        expect(chooseRecordedBuild({...record, comparison: slower}, "off").record).toBeUndefined();
        expect(chooseRecordedBuild({...record, comparison: slower}, "on").record).toBeDefined();
    });
});
