import {z} from "zod";
import {DEFAULT_TEMPERATURE, type ChatMessage, type ContextOverflowPolicy, type GenerationRequest, type ResponseConstraint, type SamplingOptions} from "../../runtime/types.js";

/**
 * Request bodies of the OpenAI API, as far as edge-llm implements them. Unknown fields are
 * ignored (clients send many optional ones); known fields with unsupported values are
 * rejected with the field named in `param`, never silently dropped.
 */

/** OpenAI's default for the legacy completions endpoint. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;
const MAX_STOP_STRINGS = 16;

const textPart = z.object({type: z.literal("text"), text: z.string()});
const contentPart = z.union([
    textPart,
    z.object({type: z.string()}).loose().refine(() => false, {message: "only text content parts are supported by this model"})
]);

const message = z.object({
    role: z.enum(["system", "developer", "user", "assistant", "tool"]),
    content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
    name: z.string().optional()
});

const stop = z.union([z.string(), z.array(z.string()).max(MAX_STOP_STRINGS)]).nullish();

const responseFormat = z.discriminatedUnion("type", [
    z.object({type: z.literal("text")}),
    z.object({type: z.literal("json_object")}),
    z.object({
        type: z.literal("json_schema"),
        json_schema: z.object({
            name: z.string().max(64).optional(),
            description: z.string().optional(),
            schema: z.record(z.string(), z.unknown()).optional(),
            strict: z.boolean().nullish()
        })
    })
]);

const sampling = {
    temperature: z.number().min(0).max(2).nullish(),
    top_p: z.number().min(0).max(1).nullish(),
    top_k: z.number().int().min(0).nullish(),
    min_p: z.number().min(0).max(1).nullish(),
    seed: z.number().int().nullish(),
    presence_penalty: z.number().min(-2).max(2).nullish(),
    frequency_penalty: z.number().min(-2).max(2).nullish(),
    repeat_penalty: z.number().positive().max(10).nullish(),
    repeat_last_n: z.number().int().min(0).max(4096).nullish()
};

/** Speculative decoding for this request: false opts out, true or "prompt-lookup" opts in. */
const speculative = z.union([z.boolean(), z.enum(["prompt-lookup", "draft"])]).optional();

/** Pins the request to a conversation's cached KV state; the X-Session-Id header does the same. */
const session = z.string().min(1).max(256).optional();

const streamOptions = z.object({include_usage: z.boolean().nullish()}).nullish();

/** edge-llm extension: overrides the server's context overflow policy for this request. */
const contextOverflow = z.enum(["error", "truncate", "slide"] satisfies ContextOverflowPolicy[]).nullish();

/** Fields edge-llm does not implement yet: a value that asks for them is rejected. */
const notYet = {
    n: z.literal(1, {message: "only n=1 is supported"}).nullish(),
    logprobs: z.union([z.literal(false), z.null()], {message: "logprobs are not supported yet"}).optional()
};

export const chatCompletionBody = z.object({
    model: z.string().min(1),
    messages: z.array(message).min(1),
    max_tokens: z.number().int().min(1).nullish(),
    max_completion_tokens: z.number().int().min(1).nullish(),
    stop,
    stream: z.boolean().nullish(),
    stream_options: streamOptions,
    response_format: responseFormat.nullish(),
    context_overflow: contextOverflow,
    session,
    speculative,
    tools: z.array(z.unknown()).max(0, {message: "tool calling is not supported yet"}).nullish(),
    ...sampling,
    ...notYet,
    top_logprobs: z.null().optional()
});
export type ChatCompletionBody = z.infer<typeof chatCompletionBody>;

export const completionBody = z.object({
    model: z.string().min(1),
    prompt: z.union([z.string(), z.array(z.string()).length(1, {message: "only one prompt per request is supported"})]),
    max_tokens: z.number().int().min(1).nullish(),
    stop,
    stream: z.boolean().nullish(),
    stream_options: streamOptions,
    echo: z.boolean().nullish(),
    suffix: z.null({message: "suffix (fill-in-the-middle) is not supported"}).optional(),
    response_format: responseFormat.nullish(),
    context_overflow: contextOverflow,
    session,
    speculative,
    ...sampling,
    n: notYet.n,
    best_of: z.literal(1, {message: "only best_of=1 is supported"}).nullish(),
    logprobs: z.null({message: "logprobs are not supported yet"}).optional()
});
export type CompletionBody = z.infer<typeof completionBody>;

export function chatToGenerationRequest(body: ChatCompletionBody): GenerationRequest {
    return {
        model: body.model,
        input: {kind: "chat", messages: body.messages.map(toChatMessage)},
        sampling: toSampling(body),
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
        stop: toStopList(body.stop),
        responseFormat: toConstraint(body.response_format),
        contextOverflow: body.context_overflow ?? undefined,
        speculative: body.speculative,
        session: body.session
    };
}

export function completionToGenerationRequest(body: CompletionBody): GenerationRequest {
    return {
        model: body.model,
        input: {kind: "completion", prompt: typeof body.prompt === "string" ? body.prompt : body.prompt[0]!},
        sampling: toSampling(body),
        maxTokens: body.max_tokens ?? DEFAULT_COMPLETION_MAX_TOKENS,
        stop: toStopList(body.stop),
        responseFormat: toConstraint(body.response_format),
        contextOverflow: body.context_overflow ?? undefined,
        speculative: body.speculative,
        session: body.session
    };
}

function toChatMessage(entry: z.infer<typeof message>): ChatMessage {
    const content = entry.content == null
        ? ""
        : typeof entry.content === "string"
            ? entry.content
            : entry.content.map((part) => ("text" in part ? String(part.text) : "")).join("");
    return {role: entry.role, content};
}

function toSampling(body: {[K in keyof typeof sampling]?: number | null}): SamplingOptions {
    return {
        temperature: body.temperature ?? DEFAULT_TEMPERATURE,
        topP: body.top_p ?? undefined,
        topK: body.top_k ?? undefined,
        minP: body.min_p ?? undefined,
        seed: body.seed ?? undefined,
        presencePenalty: body.presence_penalty ?? undefined,
        frequencyPenalty: body.frequency_penalty ?? undefined,
        repeatPenalty: body.repeat_penalty ?? undefined,
        penaltyLastN: body.repeat_last_n ?? undefined
    };
}

function toStopList(value: string | string[] | null | undefined): string[] {
    if (value == null) return [];
    return typeof value === "string" ? [value] : value;
}

function toConstraint(format: z.infer<typeof responseFormat> | null | undefined): ResponseConstraint | undefined {
    if (format == null || format.type === "text") return undefined;
    if (format.type === "json_object") return {type: "json_object"};
    return {type: "json_schema", schema: format.json_schema.schema ?? {type: "object"}, name: format.json_schema.name};
}
