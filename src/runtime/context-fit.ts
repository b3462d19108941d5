import type {RenderedPrompt} from "../backends/backend.js";
import {DEFAULT_SINK_TOKENS, slidingWindow, truncationRange, truncationReserve, type SlidingWindow} from "../kv/window.js";
import {ContextLengthExceededError, InvalidRequestError} from "./errors.js";
import type {ContextOverflowPolicy} from "./types.js";

/** The server's context-overflow settings; a request may override `policy`. */
export interface ContextOverflowOptions {
    /** Default "error". */
    policy?: ContextOverflowPolicy;
    /** Tokens truncation and sliding never drop. Default: the BOS + system prompt tokens, else 4. */
    sinkTokens?: number;
    /** Tokens erased per slide. Default: a quarter of the context. */
    slideTokens?: number;
}

export interface ContextFit {
    policy: ContextOverflowPolicy;
    /** The prompt to evaluate: the rendered one, or what truncation left of it. */
    prompt: RenderedPrompt;
    truncatedPromptTokens: number;
    /** Most tokens the generation may produce. */
    tokenLimit: number;
    /** Set under `slide`: the sequence erases tokens after the sinks when full. */
    window?: SlidingWindow;
}

const SLIDE_UNAVAILABLE =
    `context_overflow "slide" is not available: this model's KV cache cannot be shifted (a quantized K cache). ` +
    `Use "truncate" or "error", or serve with kvCacheType "f16".`;

/**
 * Makes `rendered` fit a sequence of `contextSize` tokens under the policy, or throws
 * `ContextLengthExceededError` (policy `error`). A prompt that fits is never changed; one
 * that does not keeps its sink tokens and its newest tokens, leaving room to answer.
 * Without `maxTokens`, a sliding generation is bounded by one context's worth of tokens.
 */
export function fitToContext(
    rendered: RenderedPrompt,
    request: {contextSize: number; maxTokens?: number; policy?: ContextOverflowPolicy; param: string; canShiftContext?: boolean},
    options: ContextOverflowOptions = {}
): ContextFit {
    const {contextSize, maxTokens, param} = request;
    const policy = request.policy ?? options.policy ?? "error";
    if (policy === "slide" && request.canShiftContext === false)
        throw new InvalidRequestError(SLIDE_UNAVAILABLE, "context_overflow");
    const length = rendered.tokens.length;
    if (policy === "error") {
        if (length + 1 > contextSize)
            throw new ContextLengthExceededError(length, contextSize, param);
        // Admission: what the client asked for must fit, as OpenAI checks it. A stream is never
        // cut short of memory it was promised.
        if (maxTokens != null && length + maxTokens > contextSize)
            throw new ContextLengthExceededError(length, contextSize, "max_tokens", maxTokens);
        const room = contextSize - length;
        return {policy, prompt: rendered, truncatedPromptTokens: 0, tokenLimit: Math.min(maxTokens ?? room, room)};
    }

    const window = slidingWindow(contextSize, options.sinkTokens ?? rendered.systemTokens ?? DEFAULT_SINK_TOKENS, options.slideTokens);
    let prompt = rendered;
    if (length + 1 > contextSize) {
        const range = truncationRange(length, contextSize - truncationReserve(contextSize, maxTokens), window.sinkTokens);
        if (range != null)
            prompt = {...rendered, tokens: [...rendered.tokens.slice(0, range.start), ...rendered.tokens.slice(range.end)]};
    }
    const room = contextSize - prompt.tokens.length;
    return {
        policy,
        prompt,
        truncatedPromptTokens: length - prompt.tokens.length,
        tokenLimit: policy === "slide" ? maxTokens ?? contextSize : Math.min(maxTokens ?? room, room),
        window: policy === "slide" ? window : undefined
    };
}
