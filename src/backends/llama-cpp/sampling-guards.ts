/**
 * Sampling values that are valid on paper but break llama.cpp's arithmetic. Found by the fuzz
 * test (test/fuzz.test.ts): each made the sampler never return, so the request held its
 * sequence forever. llama.cpp divides logits by the temperature and by the repeat penalty; a
 * tiny positive divisor (7.7e-45, 5.3e-282) overflows them to infinity, the probabilities
 * become NaN, and top-p or a grammar then finds no token to pick.
 */

/** Temperatures below this are greedy decoding (as in vLLM): the result is the same, without the overflow. */
export const MIN_SAMPLING_TEMPERATURE = 1e-5;
/** Repeat penalties are raised to this; a stronger penalty than ×100 has no further effect on the choice. */
export const MIN_REPEAT_PENALTY = 0.01;

export function effectiveTemperature(temperature: number | undefined): number | undefined {
    return temperature != null && temperature > 0 && temperature < MIN_SAMPLING_TEMPERATURE ? 0 : temperature;
}

export function effectiveRepeatPenalty(penalty: number): number {
    return Math.max(penalty, MIN_REPEAT_PENALTY);
}
