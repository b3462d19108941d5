import type {FinishReason, GenerationStream, Timings, TokenLogprob, Usage} from "../../runtime/types.js";

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

export type OpenAIFinishReason = "stop" | "length" | "tool_calls";

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
        prompt_n: timings.evaluatedPromptTokens ?? usage.promptTokens - usage.cachedPromptTokens,
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

    /** A chunk with one choice object as given (answers with an index, logprobs or tool calls). */
    choiceChunk(choice: object): string {
        return `${this.head},"choices":[${JSON.stringify(choice)}]${this.usageField}}`;
    }

    /** The finishing chunk of answer `index`; the last one of the response carries the timings. */
    indexedFinishChunk(index: number, finish: OpenAIFinishReason, end?: {usage: Usage; timings: Timings}): string {
        const choice = this.kind === "chat"
            ? {index, delta: {}, logprobs: null, finish_reason: finish}
            : {index, text: "", logprobs: null, finish_reason: finish};
        const timings = end == null ? "" : `,"timings":${JSON.stringify(toOpenAITimings(end.timings, end.usage))}`;
        return `${this.head},"choices":[${JSON.stringify(choice)}]${this.usageField}${timings}}`;
    }

    /** With `stream_options.include_usage`, a last chunk with no choices carries the usage. */
    usageChunk(usage: Usage): string {
        return `${this.head},"choices":[],"usage":${JSON.stringify(toOpenAIUsage(usage))}}`;
    }
}

/** The non-streaming response: `chat.completion` or `text_completion`. */
export function completionObject(kind: CompletionKind, stream: GenerationStream, text: string, reason: FinishReason, usage: Usage, timings: Timings) {
    const finish_reason = toOpenAIFinishReason(reason);
    return responseObject(kind, stream, [kind === "chat"
        ? {index: 0, message: {role: "assistant", content: text, refusal: null}, logprobs: null, finish_reason}
        : {index: 0, text, logprobs: null, finish_reason}], usage, timings);
}

/** The non-streaming response around prepared choice objects. */
export function responseObject(kind: CompletionKind, stream: GenerationStream, choices: object[], usage: Usage, timings: Timings) {
    return {
        id: (kind === "chat" ? "chatcmpl-" : "cmpl-") + stream.id,
        object: kind === "chat" ? "chat.completion" : "text_completion",
        created: stream.created,
        model: stream.model,
        system_fingerprint: "edge-llm",
        choices,
        usage: toOpenAIUsage(usage),
        timings: toOpenAITimings(timings, usage)
    };
}

/** Chat's logprobs entries: `{token, logprob, bytes, top_logprobs}`. */
export function toChatLogprobs(entries: readonly TokenLogprob[]) {
    return entries.map((entry) => ({
        token: entry.token,
        logprob: entry.logprob,
        bytes: entry.bytes,
        top_logprobs: entry.top.map((alternative) => ({token: alternative.token, logprob: alternative.logprob, bytes: alternative.bytes}))
    }));
}

/**
 * The legacy completions logprobs object. `offset` is where the first token's text starts in
 * the answer's text (after an echoed prompt); returns the offset after the last token too.
 */
export function toCompletionLogprobs(entries: readonly TokenLogprob[], offset: number) {
    const result = {tokens: [] as string[], token_logprobs: [] as number[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[]};
    let at = offset;
    for (const entry of entries) {
        result.tokens.push(entry.token);
        result.token_logprobs.push(entry.logprob);
        result.top_logprobs.push(Object.fromEntries(entry.top.map((alternative) => [alternative.token, alternative.logprob])));
        result.text_offset.push(at);
        at += entry.token.length;
    }
    return {logprobs: result, offset: at};
}
