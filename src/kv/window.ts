/**
 * Context window arithmetic for prompts and generations that outgrow a sequence, StreamingLLM
 * style (mlx-lm's `RotatingKVCache(max_size, keep)`): the first *sink* tokens (BOS, system
 * prompt) always stay, and tokens right after them are the ones dropped. Pure functions over
 * token counts; the backend applies the ranges to its KV cache.
 */

/** A half-open range of token positions, `[start, end)`. */
export interface TokenRange {
    start: number;
    end: number;
}

export interface SlidingWindow {
    /** Leading tokens never dropped. */
    sinkTokens: number;
    /** Tokens dropped at once when the sequence is full. */
    slideTokens: number;
}

/** Sink tokens when the prompt has no system part and the settings name no count. */
export const DEFAULT_SINK_TOKENS = 4;

/**
 * Sinks may take at most half the context, so a slide or a truncation always has tokens it
 * may drop; and at least one (BOS), so the first KV cell is never erased — llama.cpp then has
 * to re-evaluate the whole sequence.
 */
export function clampSinkTokens(sinkTokens: number, contextSize: number): number {
    return Math.max(1, Math.min(Math.floor(sinkTokens), Math.floor(contextSize / 2)));
}

/** A quarter of the context: few enough slides to keep their cost low, most of the window kept. */
export function defaultSlideTokens(contextSize: number): number {
    return Math.max(1, Math.floor(contextSize / 4));
}

/** The window of a sequence of `contextSize` tokens, with the settings' values clamped. */
export function slidingWindow(contextSize: number, sinkTokens: number, slideTokens?: number): SlidingWindow {
    const sinks = clampSinkTokens(sinkTokens, contextSize);
    const room = Math.max(1, contextSize - sinks - 1);
    return {sinkTokens: sinks, slideTokens: Math.max(1, Math.min(Math.floor(slideTokens ?? defaultSlideTokens(contextSize)), room))};
}

/**
 * What to erase from a full sequence of `length` tokens: `slideTokens` right after the sinks,
 * fewer when the sequence is shorter. Frees at least one token whenever `length` > 0 (when the
 * sinks cover everything but the last token, that one goes).
 */
export function slideRange(length: number, window: SlidingWindow): TokenRange {
    if (length <= 0)
        return {start: 0, end: 0};
    const start = Math.min(window.sinkTokens, length - 1);
    return {start, end: Math.min(length, start + Math.max(1, window.slideTokens))};
}

/**
 * Room a truncated prompt leaves for the answer: `maxTokens`, at most a quarter of the context
 * (a long answer must not cost most of the prompt), at least one token.
 */
export function truncationReserve(contextSize: number, maxTokens?: number): number {
    const quarter = Math.max(1, Math.floor(contextSize / 4));
    return Math.max(1, Math.min(maxTokens ?? quarter, quarter));
}

/**
 * The prompt tokens to drop so that `keep` remain: the oldest ones after the sinks. The last
 * prompt token always survives (it is where generation continues). `undefined` when the prompt
 * already fits.
 */
export function truncationRange(promptLength: number, keep: number, sinkTokens: number): TokenRange | undefined {
    const kept = Math.max(1, keep);
    if (promptLength <= kept)
        return undefined;
    const start = Math.max(0, Math.min(sinkTokens, kept - 1));
    return {start, end: start + (promptLength - kept)};
}
