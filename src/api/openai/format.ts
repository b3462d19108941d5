import type {FinishReason, GenerationStream, Timings, Usage} from "../../runtime/types.js";

/** OpenAI wire shapes built from the generation stream. One small formatter per message kind. */

export interface OpenAIUsage {
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    prompt_tokens_details: {cached_tokens: number};
    /** Under context_overflow `truncate` or `slide`: prompt tokens dropped before evaluation. */
    truncated_prompt_tokens?: number;
    /** Under context_overflow `truncate` or `slide`: tokens the sliding window erased while generating. */
    dropped_context_tokens?: number;
}

export type OpenAIFinishReason = "stop" | "length";

export function toOpenAIUsage(usage: Usage): OpenAIUsage {
    const wire: OpenAIUsage = {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.totalTokens,
        prompt_tokens_details: {cached_tokens: usage.cachedPromptTokens}
    };
    if (usage.truncatedPromptTokens != null) wire.truncated_prompt_tokens = usage.truncatedPromptTokens;
    if (usage.droppedContextTokens != null) wire.dropped_context_tokens = usage.droppedContextTokens;
    return wire;
}

/** Timings in llama-server's field names, which several clients already read. */
export function toOpenAITimings(timings: Timings, usage: Usage) {
    return {
        prompt_n: usage.promptTokens - usage.cachedPromptTokens,
        cache_n: usage.cachedPromptTokens,
        prompt_ms: timings.promptMs,
        prompt_per_second: timings.promptTokensPerSecond,
        predicted_n: usage.completionTokens,
        predicted_ms: timings.generationMs,
        predicted_per_second: timings.generationTokensPerSecond,
        queued_ms: timings.queuedMs,
        ttft_ms: timings.timeToFirstTokenMs,
        ...(timings.draftTokens == null ? {} : {draft_n: timings.draftTokens, draft_n_accepted: timings.draftTokensAccepted ?? 0})
    };
}

export function toOpenAIFinishReason(reason: FinishReason): OpenAIFinishReason {
    return reason === "length" ? "length" : "stop";
}

export type CompletionKind = "chat" | "completion";

/**
 * Builds the `data:` payloads of one streamed response. Holds the per-stream state
 * (id, whether the role delta went out) so the runtime does not have to.
 */
export class ChunkFormatter {
    private readonly head: string;
    private readonly usageField: string;

    constructor(private readonly kind: CompletionKind, stream: GenerationStream, includeUsage: boolean) {
        const id = (kind === "chat" ? "chatcmpl-" : "cmpl-") + stream.id;
        const object = kind === "chat" ? "chat.completion.chunk" : "text_completion";
        // Serialized once: every chunk of a stream starts the same way.
        this.head = `{"id":${JSON.stringify(id)},"object":"${object}","created":${stream.created},"model":${JSON.stringify(stream.model)},"system_fingerprint":"edge-llm"`;
        this.usageField = includeUsage ? `,"usage":null` : "";
    }

    /** The first chat chunk announces the role, as OpenAI's does. */
    roleChunk(): string {
        return `${this.head},"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]${this.usageField}}`;
    }

    textChunk(text: string): string {
        const choice = this.kind === "chat"
            ? `{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}`
            : `{"index":0,"text":${JSON.stringify(text)},"logprobs":null,"finish_reason":null}`;
        return `${this.head},"choices":[${choice}]${this.usageField}}`;
    }

    finishChunk(reason: FinishReason, usage: Usage, timings: Timings): string {
        const finish = JSON.stringify(toOpenAIFinishReason(reason));
        const choice = this.kind === "chat"
            ? `{"index":0,"delta":{},"logprobs":null,"finish_reason":${finish}}`
            : `{"index":0,"text":"","logprobs":null,"finish_reason":${finish}}`;
        return `${this.head},"choices":[${choice}]${this.usageField},"timings":${JSON.stringify(toOpenAITimings(timings, usage))}}`;
    }

    /** With `stream_options.include_usage`, a last chunk with no choices carries the usage. */
    usageChunk(usage: Usage): string {
        return `${this.head},"choices":[],"usage":${JSON.stringify(toOpenAIUsage(usage))}}`;
    }
}

/** The non-streaming response: `chat.completion` or `text_completion`. */
export function completionObject(kind: CompletionKind, stream: GenerationStream, text: string, reason: FinishReason, usage: Usage, timings: Timings) {
    const finish_reason = toOpenAIFinishReason(reason);
    return {
        id: (kind === "chat" ? "chatcmpl-" : "cmpl-") + stream.id,
        object: kind === "chat" ? "chat.completion" : "text_completion",
        created: stream.created,
        model: stream.model,
        system_fingerprint: "edge-llm",
        choices: [kind === "chat"
            ? {index: 0, message: {role: "assistant", content: text, refusal: null}, logprobs: null, finish_reason}
            : {index: 0, text, logprobs: null, finish_reason}],
        usage: toOpenAIUsage(usage),
        timings: toOpenAITimings(timings, usage)
    };
}
