import type {ChatMessage, ResponseConstraint, SamplingOptions} from "../runtime/types.js";

/**
 * The seam between the runtime and an inference library (llama.cpp today; MLX and ONNX later).
 * The runtime owns scheduling, text assembly and stop strings; a backend turns tokens into
 * tokens on one of a fixed set of sequences.
 */
export interface Backend {
    readonly name: string;
    loadModel(options: LoadModelOptions): Promise<BackendModel>;
    dispose(): Promise<void>;
}

export interface LoadModelOptions {
    /** Path to the model file. */
    path: string;
    /** Name clients use for the model (`model` field); defaults to the file name. */
    id: string;
    /** Tokens of context per sequence. `undefined` = the model's trained size capped by the backend. */
    contextSize?: number;
    /** Sequences decoded side by side in one context. */
    parallel: number;
    /** CPU threads; `undefined` = let the backend choose for this machine and model. */
    threads?: number;
    signal?: AbortSignal;
}

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
    /** Unix seconds when loading finished. */
    loadedAt: number;
}

/** A rendered prompt: the tokens to evaluate plus stop strings the template implies. */
export interface RenderedPrompt {
    tokens: number[];
    stopStrings: string[];
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
    createDetokenizer(): IncrementalDetokenizer;
    prepareConstraint(constraint: ResponseConstraint): Promise<OutputConstraint>;
    dispose(): Promise<void>;
}

export interface SequenceGenerateOptions {
    sampling: SamplingOptions;
    constraint?: OutputConstraint;
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
}

export interface GeneratedToken {
    token: number;
    /** Prompt tokens that were already in KV and skipped (set on the first token only). */
    reusedPromptTokens?: number;
}

/** Turns a token stream into text without splitting multi-byte characters. */
export interface IncrementalDetokenizer {
    push(token: number): string;
    /** Whatever bytes are still held (an incomplete character at the very end). */
    flush(): string;
}
