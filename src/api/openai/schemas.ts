import {z} from "zod";
import {toChatMessages, toolCallConstraint, type ToolPlan} from "./tools.js";
import {DEFAULT_TEMPERATURE, MAX_TOP_LOGPROBS, type ContextOverflowPolicy, type GenerationRequest, type ResponseConstraint, type SamplingOptions} from "../../runtime/types.js";

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

const toolCall = z.object({
    id: z.string(),
    type: z.literal("function").optional(),
    function: z.object({name: z.string(), arguments: z.string()})
});

const message = z.object({
    role: z.enum(["system", "developer", "user", "assistant", "tool"]),
    content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
    name: z.string().optional(),
    /** An assistant turn that called tools. */
    tool_calls: z.array(toolCall).nullish(),
    /** A `tool` message answers this call. */
    tool_call_id: z.string().nullish()
});
export type ChatMessageBody = z.infer<typeof message>;

const functionTool = z.object({
    type: z.literal("function"),
    function: z.object({
        name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, {message: "function names are 1 to 64 letters, digits, underscores or dashes"}),
        description: z.string().optional(),
        parameters: z.record(z.string(), z.unknown()).optional(),
        strict: z.boolean().nullish()
    })
});
export type FunctionTool = z.infer<typeof functionTool>;

const toolChoice = z.union([
    z.enum(["none", "auto", "required"]),
    z.object({type: z.literal("function"), function: z.object({name: z.string()})})
]);
export type ToolChoice = z.infer<typeof toolChoice>;

/** Most answers per request (`n`); they run one after another on one sequence. */
export const MAX_CHOICES = 16;
const choices = z.number().int().min(1).max(MAX_CHOICES).nullish();
const topLogprobs = z.number().int().min(0).max(MAX_TOP_LOGPROBS);

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
    tools: z.array(functionTool).max(128).nullish(),
    tool_choice: toolChoice.nullish(),
    parallel_tool_calls: z.boolean().nullish(),
    ...sampling,
    n: choices,
    logprobs: z.boolean().nullish(),
    top_logprobs: topLogprobs.nullish()
}).superRefine((body, context) => {
    const issue = (path: string, message: string) => context.addIssue({code: "custom", path: [path], message});
    if (body.top_logprobs != null && body.logprobs !== true)
        issue("top_logprobs", "top_logprobs needs logprobs: true");
    const tools = body.tools ?? [];
    const choice = body.tool_choice;
    if ((choice === "required" || typeof choice === "object") && tools.length === 0)
        issue("tool_choice", "tool_choice needs tools");
    if (typeof choice === "object" && choice != null && !tools.some((tool) => tool.function.name === choice.function.name))
        issue("tool_choice", `no tool is named '${choice.function.name}'`);
    if (tools.length > 0 && choice !== "none" && body.response_format != null && body.response_format.type !== "text")
        issue("response_format", "tools cannot be combined with a JSON response_format");
    const names = new Set<string>();
    tools.forEach((tool, index) => {
        if (names.has(tool.function.name)) context.addIssue({code: "custom", path: ["tools", index, "function", "name"], message: "tool names must be unique"});
        names.add(tool.function.name);
    });
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
    n: choices,
    best_of: z.number().int().nullish(),
    /** The legacy form: how many alternatives each token lists (0 = the token's own only). */
    logprobs: topLogprobs.nullish()
}).superRefine((body, context) => {
    if (body.best_of != null && body.best_of !== (body.n ?? 1))
        context.addIssue({code: "custom", path: ["best_of"], message: "best_of must equal n (answers are not ranked)"});
});
export type CompletionBody = z.infer<typeof completionBody>;

/** `tools`: what `planTools` made of the body's tools, tool_choice and parallel_tool_calls. */
export function chatToGenerationRequest(body: ChatCompletionBody, tools?: ToolPlan): GenerationRequest {
    return {
        model: body.model,
        input: {kind: "chat", messages: toChatMessages(body.messages, tools)},
        sampling: toSampling(body),
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
        stop: toStopList(body.stop),
        responseFormat: (tools == null ? undefined : toolCallConstraint(tools)) ?? toConstraint(body.response_format),
        contextOverflow: body.context_overflow ?? undefined,
        speculative: body.speculative,
        session: body.session,
        n: body.n ?? undefined,
        // A forced call's answer is tool_calls, which carry no logprobs (as with OpenAI).
        logprobs: body.logprobs === true && tools?.mode !== "required" ? {top: body.top_logprobs ?? 0} : undefined
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
        session: body.session,
        n: body.n ?? undefined,
        logprobs: body.logprobs == null ? undefined : {top: body.logprobs}
    };
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
