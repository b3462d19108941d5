/**
 * The one contract between transports (HTTP/SSE, WebSocket, CLI) and the engine.
 * A transport builds a `GenerationRequest`, calls `Runtime.generate()` and encodes the
 * `GenerationEvent`s it gets back. Nothing here knows about HTTP, sockets or terminals.
 */

export type ChatRole = "system" | "developer" | "user" | "assistant" | "tool";

export interface ChatMessage {
    role: ChatRole;
    content: string;
}

export type GenerationInput =
    | {kind: "chat"; messages: ChatMessage[]}
    | {kind: "completion"; prompt: string};

/** Structured-output constraint, enforced by a grammar during sampling. */
export type ResponseConstraint =
    | {type: "json_object"}
    | {
        type: "json_schema"; schema: Record<string, unknown>; name?: string;
        /** The request field the schema came from, named in errors (default `response_format`). */
        param?: string;
    };

/** Sampling temperature when a request gives none (llama-server and Ollama use 0.8 too). */
export const DEFAULT_TEMPERATURE = 0.8;

export interface SamplingOptions {
    /** 0 = greedy. Default 1 (OpenAI's default). */
    temperature: number;
    topP?: number;
    topK?: number;
    minP?: number;
    /** Fixes the sampler's random stream; the same seed and input give the same output. */
    seed?: number;
    presencePenalty?: number;
    frequencyPenalty?: number;
    /** llama.cpp-style multiplicative repeat penalty (1 = off). */
    repeatPenalty?: number;
    /** How many recent tokens the penalties look at. Default 64. */
    penaltyLastN?: number;
}

/**
 * What happens when a prompt or its answer outgrows the sequence's context:
 * - `error`: a prompt that does not fit is rejected; generation ends with `length` when full.
 * - `truncate`: the oldest prompt tokens after the sink tokens are dropped so the prompt fits
 *   with room to answer; generation still ends with `length` when full.
 * - `slide`: like `truncate` for the prompt; during generation the oldest tokens after the
 *   sinks are dropped from the KV cache when it is full, so only `maxTokens` ends generation.
 */
export type ContextOverflowPolicy = "error" | "truncate" | "slide";

export interface GenerationRequest {
    /** Model id as the client named it; `undefined` means the default model. */
    model?: string;
    input: GenerationInput;
    sampling: SamplingOptions;
    /** Upper bound on generated tokens; `undefined` means until the context is full. */
    maxTokens?: number;
    /** Generation ends before any of these strings; they are never emitted. */
    stop: string[];
    responseFormat?: ResponseConstraint;
    /** Overrides the server's `contextOverflow` setting for this request. */
    contextOverflow?: ContextOverflowPolicy;
    /**
     * Speculative decoding for this request: false opts out, "prompt-lookup" asks for n-gram
     * drafting even where the server does not speculate by default. Default: the server's choice.
     */
    speculative?: boolean | "prompt-lookup" | "draft";
    /** Pins a conversation to its cached KV state (X-Session-Id header, `session` field, WS connection). */
    session?: string;
    /**
     * Answers to generate from the one prompt (default 1). They run one after another on the
     * same sequence, so the prompt is evaluated once and its KV reused; with a seed, answer i
     * samples with seed + i.
     */
    n?: number;
    /** Report each generated token's log-probability and the `top` likeliest alternatives (0–20). */
    logprobs?: {top: number};
}

/** Most alternatives a token's log-probabilities list (OpenAI's limit). */
export const MAX_TOP_LOGPROBS = 20;

export interface TokenAlternative {
    /** The token's text (may be a partial character for byte-fallback tokens). */
    token: string;
    bytes: number[];
    logprob: number;
}

/** One generated token's log-probability, with the likeliest tokens at its position. */
export interface TokenLogprob extends TokenAlternative {
    top: TokenAlternative[];
}

export type FinishReason = "stop" | "length" | "cancelled" | "error";

export interface Usage {
    promptTokens: number;
    completionTokens: number;
    totalTokens: number;
    /** Prompt tokens served from KV already in the sequence (prefix reuse). */
    cachedPromptTokens: number;
    /** Set under `truncate` and `slide`: prompt tokens dropped before evaluation (not in `promptTokens`). */
    truncatedPromptTokens?: number;
    /** Set under `truncate` and `slide`: tokens the sliding window erased from the KV cache while generating. */
    droppedContextTokens?: number;
}

export interface Timings {
    /** Time spent waiting for a free sequence slot. */
    queuedMs: number;
    /** From the request entering the runtime to the first generated token. */
    timeToFirstTokenMs: number;
    promptMs: number;
    generationMs: number;
    promptTokensPerSecond: number;
    generationTokensPerSecond: number;
    /** With `n` > 1: prompt tokens evaluated for all answers together (the later ones reuse the first's KV). */
    evaluatedPromptTokens?: number;
    /** Speculative decoding: draft tokens verified, and how many of them the target kept. */
    draftTokens?: number;
    draftTokensAccepted?: number;
}

export type GenerationEvent =
    | {
        type: "delta"; text: string; tokens: number;
        /** Which answer (with `n` > 1); absent means 0. */
        choice?: number;
        /** With `logprobs`: the tokens whose text this delta releases (text held back for stop strings comes later). */
        logprobs?: TokenLogprob[];
    }
    | {
        type: "done"; finishReason: FinishReason; usage: Usage; timings: Timings;
        /** With `n` > 1: how each answer ended, by index (`usage` counts them all). */
        choices?: FinishReason[];
    };

/**
 * What `Runtime.generate()` resolves to once the request is validated and holds a sequence.
 * Iterate it for events; an error mid-generation is thrown from the iterator.
 * States of a request, drawn once:
 *
 *   queued ──► prefilling ──► generating ──► done (stop | length)
 *      │            │              │
 *      └────────────┴──────────────┴──► done (cancelled) | thrown error
 *
 * Rejections of `generate()` itself (bad input, queue full, prompt too long) happen before
 * any event, so transports can still answer with a proper status code.
 */
export interface GenerationStream extends AsyncIterable<GenerationEvent> {
    readonly id: string;
    readonly model: string;
    /** Unix seconds. */
    readonly created: number;
    readonly promptTokens: number;
}
