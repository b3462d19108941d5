import type {ChatMessage, ResponseConstraint, SamplingOptions} from "../runtime/types.js";
import type {DraftSource, SpeculationStep} from "../speculative/types.js";
import type {AcceptanceOptions} from "../speculative/acceptance.js";
import type {SlidingWindow} from "../kv/window.js";

/**
 * The seam between the runtime and an inference library (llama.cpp today; MLX and ONNX later).
 * The runtime owns scheduling, text assembly and stop strings; a backend turns tokens into
 * tokens on one of a fixed set of sequences.
 */
export interface Backend {
    readonly name: string;
    loadModel(options: LoadModelOptions): Promise<BackendModel>;
    /** Lowers (or restores) the CPU threads decoding may use, live; never above a model's own count. */
    setMaxThreads?(threads: number): void;
    dispose(): Promise<void>;
}

export interface LoadModelOptions {
    /** Path to the model file. */
    path: string;
    /** Name clients use for the model (`model` field); defaults to the file name. */
    id: string;
    /** Tokens of context per sequence. `undefined` = the model's trained size capped by the backend. */
    contextSize?: number;
    /**
     * KV memory for all sequences together, used to size the context when `contextSize` is
     * unset: tokens, or MiB converted with the model's KV bytes per token.
     */
    kvBudget?: {tokens?: number; mib?: number};
    /** Sequences decoded side by side in one context. */
    parallel: number;
    /** CPU threads; `undefined` = let the backend choose for this machine and model. */
    threads?: number;
    /**
     * Measure decode speed per thread count at the first load of a model on this machine (CPU
     * only, when `threads` is unset) and cache the fastest in `cacheFile`. Unset: a heuristic.
     */
    threadTuning?: {cacheFile: string};
    /** Element type of the KV cache. Default "f16". */
    kvCacheType?: KvCacheType;
    /**
     * "auto": off on CPU (llama.cpp's CPU flash attention made stories260K decode ~40% and
     * prefill ~3× slower here), llama.cpp's choice on a GPU; quantized KV caches need it on.
     */
    flashAttention?: "auto" | "on" | "off";
    /** A small model with the same tokenizer that drafts tokens for speculative decoding. */
    draftPath?: string;
    /** Overrides the adaptive draft length and pause rules (src/speculative/acceptance.ts); tests and benchmarks pin them. */
    speculationTuning?: AcceptanceOptions;
    signal?: AbortSignal;
    /** What to do when the model and its context do not fit in free memory (src/models/memory-fit.ts). Default "shrink". */
    memoryFit?: "shrink" | "error" | "off";
    /** Memory the model may use at most, even when more is free (leave room for other apps). */
    memoryLimitBytes?: number;
}

/** KV cache element types: quantized ones take about half (q8_0) or a quarter (q4_0) of f16's memory. */
export type KvCacheType = "f16" | "q8_0" | "q4_0";

export interface ModelDescription {
    id: string;
    path: string;
    architecture: string;
    /** Tokens of context each sequence gets. */
    contextSize: number;
    trainContextSize: number;
    parallel: number;
    threads: number;
    /** Why that thread count was chosen. */
    threadsReason: string;
    /** "cuda" | "vulkan" | "metal" | "cpu" */
    accelerator: string;
    fileSizeBytes: number;
    chatTemplate: string;
    kvCacheType: KvCacheType;
    /** Estimated KV cache bytes per token of context (keys and values, all layers); 0 when the metadata does not say. */
    kvBytesPerToken: number;
    /** Whether KV positions can be shifted, which `context_overflow: "slide"` needs. */
    canShiftContext: boolean;
    flashAttention: boolean;
    /**
     * Which loop decodes a stream that is alone on the model: "native" (llama.cpp decodes and
     * samples without a JavaScript round trip per token) or the binding's own; `reason` says why.
     */
    decodeLoop?: {kind: "native" | "binding"; reason: string};
    /** File of the draft model loaded beside this one, if any. */
    draftModel?: string;
    /** Identity of the weights and context layout: KV states are only exchanged between equal ones. */
    fingerprint: string;
    /** Unix seconds when loading finished. */
    loadedAt: number;
    /** The memory check before loading: estimated bytes and what was free; `requestedContextSize` when the context was lowered to fit. */
    memory?: {modelBytes: number; contextBytes: number; freeBytes: number; requestedContextSize?: number};
}

/** A rendered prompt: the tokens to evaluate plus stop strings the template implies. */
export interface RenderedPrompt {
    tokens: number[];
    stopStrings: string[];
    /** Leading tokens up to the end of the system message (BOS included), when there is one. */
    systemTokens?: number;
}

/** A prepared structured-output constraint; opaque to the runtime. */
export interface OutputConstraint {
    /** The constraint pads its output (e.g. JSON grammars end with newlines): trim it. */
    readonly trimTrailingWhitespace: boolean;
    readonly stopStrings: readonly string[];
}

export interface BackendModel {
    readonly description: ModelDescription;
    /** The sequences of the model's context; the runtime's scheduler hands them out. */
    readonly sequences: readonly BackendSequence[];

    renderChat(messages: readonly ChatMessage[]): RenderedPrompt;
    renderCompletion(prompt: string): RenderedPrompt;
    /** Plain tokenization, e.g. to count the tokens of a string. */
    tokenize(text: string): number[];
    /*
     * Optional capabilities (a backend without them answers 400 for the endpoints and fields
     * that need them): token utilities, embeddings, per-token log-probabilities.
     */
    /**
     * Tokenization for the /tokenize endpoint: `special` parses special-token text (e.g. `<s>`)
     * as those tokens and adds BOS where the model expects one.
     */
    tokenizeWith?(text: string, options: {special: boolean}): number[];
    /** Text of `tokens` (special tokens written out when `special`). */
    detokenize?(tokens: readonly number[], special?: boolean): string;
    /** The text one token stands for in the middle of a text (leading space kept). */
    tokenText?(token: number): string;
    /** The bytes one token stands for (a byte-fallback token is a single byte). */
    tokenBytes?(token: number): Uint8Array;
    /** Token ids the model knows: 0 ≤ id < vocabularySize (0: unknown). */
    readonly vocabularySize?: number;
    /**
     * Embedding vectors (unnormalised, as the model pools them) of each input, evaluated one
     * after another on an embedding context created at first use and kept.
     */
    embed?(inputs: readonly (string | readonly number[])[], signal?: AbortSignal): Promise<{vectors: number[][]; tokens: number}>;
    /** Its sequences honour `SequenceGenerateOptions.logprobs`. */
    readonly supportsLogprobs?: boolean;
    createDetokenizer(): IncrementalDetokenizer;
    prepareConstraint(constraint: ResponseConstraint): Promise<OutputConstraint>;
    dispose(): Promise<void>;
}

export interface SequenceGenerateOptions {
    sampling: SamplingOptions;
    constraint?: OutputConstraint;
    /** Draft tokens to verify in batches (speculative decoding); ignored where it cannot apply. */
    speculation?: DraftSource;
    /**
     * When the sequence is full, erase tokens after the sinks and go on. Without it the
     * sequence never shifts: the runtime stops generation before the context is full.
     */
    slidingWindow?: SlidingWindow;
    /** Report each token's log-probability and this many likeliest alternatives. */
    logprobs?: {top: number};
    /** The caller stops after this many tokens; a backend decoding ahead stops there too. */
    maxTokens?: number;
}

export interface BackendSequence {
    readonly index: number;
    /** Tokens whose KV this sequence holds now (what a new prompt can reuse). */
    readonly cachedTokens: readonly number[];
    /**
     * Evaluates `prompt` (reusing the longest cached prefix) and yields sampled tokens until an
     * end-of-generation token or until the caller stops iterating. Stopping the iteration is how
     * generation is cancelled; the sequence is free again once the generator has returned.
     */
    generate(prompt: readonly number[], options: SequenceGenerateOptions): AsyncGenerator<GeneratedToken, void, void>;
    /** Drops every token from position `length` on. */
    truncate(length: number): Promise<void>;
    /** Writes the sequence's KV and tokens to `file` (the backend's own format). */
    saveState(file: string): Promise<void>;
    /**
     * Replaces the sequence's KV and tokens with a state from `saveState`. The caller must have
     * verified the file came from this model and context: a foreign state can crash the process.
     */
    loadState(file: string): Promise<void>;
    /** Drafts from the draft model loaded beside the model, following this sequence's text. */
    readonly draftSource?: DraftSource;
}

export interface GeneratedToken {
    token: number;
    /** Prompt tokens that were already in KV and skipped (set on the first token only). */
    reusedPromptTokens?: number;
    /** Tokens the sliding window erased from the KV cache since the previous token. */
    droppedTokens?: number;
    /** Set on the last token of a speculative verification step. */
    speculation?: SpeculationStep;
    /** With `logprobs`: the token's log-probability (after penalties and grammar, before temperature) and the likeliest alternatives. */
    logprobs?: {logprob: number; top: {token: number; logprob: number}[]};
}

/** Turns a token stream into text without splitting multi-byte characters. */
export interface IncrementalDetokenizer {
    push(token: number): string;
    /** Whatever bytes are still held (an incomplete character at the very end). */
    flush(): string;
}
