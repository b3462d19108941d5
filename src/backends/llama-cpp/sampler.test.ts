import {describe, expect, it} from "vitest";
import {createSampler} from "./sequence.js";

const distribution = new Map([[7, 0.5], [3, 0.3], [9, 0.15], [1, 0.05]]);

function frequencies(sample: (probabilities: ReadonlyMap<number, number>) => number, draws = 20_000) {
    const counts = new Map<number, number>();
    for (let index = 0; index < draws; index++) {
        const token = sample(distribution);
        counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    return (token: number) => (counts.get(token) ?? 0) / draws;
}

describe("createSampler (the logprobs decode loop's sampler)", () => {
    it("at temperature 1 without truncation draws tokens in proportion to their probability", () => {
        const share = frequencies(createSampler({temperature: 1, topK: 0, topP: 1, seed: 1}));
        expect(share(7)).toBeCloseTo(0.5, 1);
        expect(share(3)).toBeCloseTo(0.3, 1);
        expect(share(9)).toBeCloseTo(0.15, 1);
        expect(share(1)).toBeGreaterThan(0.02);
    });

    it("truncates like llama.cpp: top-k, top-p (keeping the token that crosses it), min-p", () => {
        expect(frequencies(createSampler({temperature: 1, topK: 1, seed: 2}))(7)).toBe(1);
        const topP = frequencies(createSampler({temperature: 1, topK: 0, topP: 0.7, seed: 3}));
        expect(topP(7) + topP(3)).toBe(1);
        const minP = frequencies(createSampler({temperature: 1, topK: 0, topP: 1, minP: 0.4, seed: 4}));
        expect(minP(9) + minP(1)).toBe(0);
    });

    it("sharpens with a low temperature, and repeats itself with the same seed", () => {
        expect(frequencies(createSampler({temperature: 0.05, seed: 5}))(7)).toBeGreaterThan(0.99);
        const first = createSampler({temperature: 1, seed: 6});
        const second = createSampler({temperature: 1, seed: 6});
        const draws = Array.from({length: 50}, () => [first(distribution), second(distribution)]);
        expect(draws.every(([a, b]) => a === b)).toBe(true);
    });
});
