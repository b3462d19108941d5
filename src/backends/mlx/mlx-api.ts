/**
 * The part of `@mlx-node/lm` (0.0.15) the MLX backend uses, written out so it type-checks
 * without the package (an optional peer dependency that only installs on Apple Silicon).
 * Names and shapes follow the package's dist/*.d.ts: `loadModel(path, {draftModelPath})`,
 * `chatStreamSessionStart(messages, config, signal)` yielding `ChatStreamEvent`s.
 */

export interface MlxChatMessage {
    role: "system" | "user" | "assistant" | "tool";
    content: string;
}

/** `ChatConfig` fields edge-llm sets (from @mlx-node/core; sampling names as in the package's family defaults). */
export interface MlxChatConfig {
    maxNewTokens?: number;
    temperature?: number;
    topP?: number;
    topK?: number;
    minP?: number;
    repetitionPenalty?: number;
    presencePenalty?: number;
    /** "none" turns a reasoning model's thinking off. */
    reasoningEffort?: string;
}

export interface MlxStreamDelta {
    text: string;
    done: false;
    isReasoning?: boolean;
}

export interface MlxStreamFinal {
    text: string;
    done: true;
    finishReason: string;
    numTokens: number;
    promptTokens: number;
    cachedTokens?: number;
}

export type MlxStreamEvent = MlxStreamDelta | MlxStreamFinal;

export interface MlxSessionLimits {
    trainedWindowTokens: number;
    effectiveWindowTokens: number;
}

export interface MlxModel {
    chatStreamSessionStart(messages: MlxChatMessage[], config?: MlxChatConfig | null, signal?: AbortSignal): AsyncGenerator<MlxStreamEvent>;
    resetCaches(): void | Promise<void>;
    contextLimits?(): MlxSessionLimits;
    maxConcurrentSequences?(): number;
}

export interface MlxLoadOptions {
    /** Gemma4 and Qwen3.5 take an external draft model for speculative decoding. */
    draftModelPath?: string;
    autoLoadDraft?: boolean;
}

/** The module namespace of `@mlx-node/lm`, as far as edge-llm uses it. */
export interface MlxLmModule {
    loadModel(modelPath: string, options?: MlxLoadOptions): Promise<MlxModel>;
}
