import type {TokenLogprob} from "../../src/runtime/types.js";

/**
 * Where `other` first departs from plain greedy output, how sure plain decoding was there: the gap
 * in nats between its two likeliest tokens at the token holding the first differing character.
 * undefined: the texts are the same. llama.cpp's logits depend slightly on how tokens were batched,
 * so a speculative answer may take the other side of a near-tie (a gap of ~1e-3); a real error shows
 * as a divergence where the target was sure.
 */
export function divergenceGap(plain: {text: string; logprobs: readonly TokenLogprob[]}, other: string): {at: number; gapNats: number} | undefined {
    let at = 0;
    while (at < plain.text.length && plain.text[at] === other[at]) at++;
    if (at === plain.text.length && at === other.length) return undefined;
    let end = 0;
    const token = plain.logprobs.find((entry) => (end += entry.token.length) > at);
    const [first, second] = token?.top ?? [];
    // Past the plain text's end (the other answer is longer): the plain answer stopped for sure.
    return {at, gapNats: first == null || second == null ? Number.POSITIVE_INFINITY : first.logprob - second.logprob};
}
