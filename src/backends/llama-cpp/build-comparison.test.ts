import {describe, expect, it} from "vitest";
import {chooseRecordedBuild, judgeComparison, PAYS_AT, requestMs} from "./build-comparison.js";
import type {BinaryScore, BuildComparison, NativeBuildRecord} from "./native-build.js";

const score = (decodeTokensPerSecond: number, prefillTokensPerSecond?: number): BinaryScore =>
    ({threads: 2, flashAttention: true, decodeTokensPerSecond, prefillTokensPerSecond});

const record: NativeBuildRecord = {
    preset: "cpu-native", gpu: false, cmakeOptions: {GGML_NATIVE: "ON"}, builtAt: "2026-11-27T00:00:00.000Z", platform: "linux-x64", command: "x"
};

describe("native build against the prebuilt binary", () => {
    it("prices a request with as many prompt tokens as answer tokens", () => {
        expect(requestMs(score(50))).toBe(20);
        expect(requestMs(score(50, 200))).toBe(25);
        expect(requestMs(score(0, 200))).toBe(Infinity);
    });

    it("pays when the median round is at least 5% faster per request", () => {
        // Round ratios 1.4, 0.9 (a noisy round), 1.5: the median is 1.4.
        const rounds = [
            {prebuilt: score(30), local: score(42)},
            {prebuilt: score(45), local: score(40.5)},
            {prebuilt: score(30), local: score(45)}
        ];
        expect(judgeComparison(rounds)).toEqual({ratio: 1.4, pays: true});
        expect(judgeComparison([{prebuilt: score(22), local: score(23)}])).toEqual({ratio: 1.045, pays: false});
        expect(judgeComparison([{prebuilt: score(20), local: score(20 * PAYS_AT)}]).pays).toBe(true);
        // Faster decode, slower prefill: the request as a whole decides.
        expect(judgeComparison([{prebuilt: score(50, 100), local: score(55, 60)}]).pays).toBe(false);
        expect(() => judgeComparison([])).toThrow(/no rounds/);
    });

    it("loads a recorded build unless it measured no faster; \"on\" loads it regardless", () => {
        const slower: BuildComparison = {model: "m.gguf", measuredAt: "x", rounds: [{prebuilt: score(1619), local: score(1533)}], ratio: 0.947, pays: false};
        expect(chooseRecordedBuild(undefined, "auto")).toEqual({});
        expect(chooseRecordedBuild(record, "auto")).toEqual({record});
        expect(chooseRecordedBuild({...record, comparisonError: "timed out"}, "auto").record).toBeDefined();
        expect(chooseRecordedBuild({...record, comparison: {...slower, ratio: 1.3, pays: true}}, "auto").record).toBeDefined();

        const skipped = chooseRecordedBuild({...record, comparison: slower}, "auto");
        expect(skipped.record).toBeUndefined();
        expect(skipped.skipped).toBe("the local build \"cpu-native\" measured no faster than the prebuilt binary here " +
            "(m.gguf, 1 round: local 1,533 tok/s decode against prebuilt 1,619, 0.947× the prebuilt binary's speed per request; it must be 1.05×), " +
            "so the prebuilt binary runs; nativeBuild \"on\" loads it anyway");
        expect(chooseRecordedBuild({...record, comparison: slower}, "off").record).toBeUndefined();
        expect(chooseRecordedBuild({...record, comparison: slower}, "on").record).toBeDefined();
    });
});
