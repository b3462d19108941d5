import type {Context} from "hono";
import type {ModelHost} from "../../runtime/model-pool.js";
import type {FinishReason, GenerationEvent, GenerationRequest, GenerationStream, Timings, Usage} from "../../runtime/types.js";
import {toOpenAIError} from "./errors.js";
import {ChunkFormatter, completionObject, responseObject, type CompletionKind} from "./format.js";
import {sseResponse, type SsePayload} from "./sse.js";
import {Answer} from "./answers.js";
import type {ToolPlan} from "./tools.js";
import {lazyToolGrammar, withLazyToolGrammar} from "./auto-tools.js";

export interface GenerateRouteOptions {
    kind: CompletionKind;
    request: GenerationRequest;
    stream: boolean;
    includeUsage: boolean;
    /** Completions with `echo`: the prompt is sent back before the generated text. */
    echo?: string;
    /** Chat with tools that may be called. */
    tools?: ToolPlan;
}

/** Runs one generation for an OpenAI endpoint and answers as JSON or as an SSE stream. */
export async function respondWithGeneration(c: Context, runtime: ModelHost, options: GenerateRouteOptions): Promise<Response> {
    const lazyGrammar = options.tools == null ? undefined : await lazyToolGrammar(runtime, options.request, options.tools);
    let generation = await runtime.generate(options.request, {signal: c.req.raw.signal});
    if (lazyGrammar != null)
        generation = withLazyToolGrammar(runtime, options.request, lazyGrammar, generation, c.req.raw.signal);
    if (needsAnswers(options))
        return respondWithAnswers(c, generation, options);
    if (options.stream) {
        const format = new ChunkFormatter(options.kind, generation, options.includeUsage);
        return sseResponse(c, streamPayloads(generation, options, format), (text) => format.textChunk(text));
    }

    let text = options.echo ?? "";
    for await (const event of generation) {
        if (event.type === "delta")
            text += event.text;
        else
            return c.json(completionObject(options.kind, generation, text, event.finishReason, event.usage, event.timings));
    }
    throw new Error("The generation ended without a result");
}

/**
 * The stream's payloads: whole chunks as strings, and generated text as `{text}`, which the
 * writer merges with the text after it until its next write and formats once (one chunk per
 * write instead of one per token: less JSON for the server to build and for the client to parse).
 */
async function* streamPayloads(generation: GenerationStream, options: GenerateRouteOptions, format: ChunkFormatter): AsyncGenerator<SsePayload, void, void> {
    if (options.kind === "chat")
        yield format.roleChunk();
    if (options.echo)
        yield {text: options.echo};

    let done: {finishReason: FinishReason; usage: Usage; timings: Timings} | undefined;
    try {
        for await (const event of generation) {
            if (event.type === "delta") {
                if (event.text.length > 0)
                    yield {text: event.text};
            } else
                done = event;
        }
    } catch (error) {
        // Headers are out; the error travels in the stream, as OpenAI does.
        yield JSON.stringify({error: toOpenAIError(error).error});
        return;
    }
    if (done == null)
        return;
    yield format.finishChunk(done.finishReason, done.usage, done.timings);
    if (options.includeUsage)
        yield format.usageChunk(done.usage);
}

/** Several answers, logprobs or tools take the per-answer path; plain requests keep the fast one. */
function needsAnswers(options: GenerateRouteOptions) {
    return (options.request.n ?? 1) > 1 || options.request.logprobs != null || options.tools != null;
}

function answersFor(options: GenerateRouteOptions) {
    return Array.from({length: options.request.n ?? 1}, (_, index) =>
        new Answer(index, options.kind, {logprobs: options.request.logprobs != null, tools: options.tools, echo: options.echo, stream: options.stream}));
}

async function respondWithAnswers(c: Context, generation: GenerationStream, options: GenerateRouteOptions): Promise<Response> {
    const answers = answersFor(options);
    if (options.stream) {
        const format = new ChunkFormatter(options.kind, generation, options.includeUsage);
        return sseResponse(c, answerPayloads(generation, options, answers, format), (text) => format.textChunk(text));
    }
    for await (const event of generation) {
        if (event.type === "delta")
            answers[event.choice ?? 0]!.push(event.text, event.logprobs);
        else {
            const reasons = event.choices ?? [event.finishReason];
            return c.json(responseObject(options.kind, generation, answers.map((answer) => answer.choice(reasons[answer.index] ?? event.finishReason)), event.usage, event.timings));
        }
    }
    throw new Error("The generation ended without a result");
}

/** Stream payloads of the per-answer path: every chunk whole, tagged with its answer's index. */
async function* answerPayloads(generation: GenerationStream, options: GenerateRouteOptions, answers: Answer[], format: ChunkFormatter): AsyncGenerator<SsePayload, void, void> {
    for (const answer of answers) {
        if (options.kind === "chat")
            yield format.choiceChunk({index: answer.index, delta: {role: "assistant", content: ""}, logprobs: null, finish_reason: null});
        else if (options.echo)
            yield format.choiceChunk({index: answer.index, text: options.echo, logprobs: null, finish_reason: null});
    }
    let done: (GenerationEvent & {type: "done"}) | undefined;
    try {
        for await (const event of generation) {
            if (event.type === "delta") {
                for (const choice of answers[event.choice ?? 0]!.push(event.text, event.logprobs))
                    yield format.choiceChunk(choice);
            } else
                done = event;
        }
    } catch (error) {
        yield JSON.stringify({error: toOpenAIError(error).error});
        return;
    }
    if (done == null)
        return;
    const reasons = done.choices ?? [done.finishReason];
    for (const answer of answers) {
        const {chunks, finishReason} = answer.finish(reasons[answer.index] ?? done.finishReason);
        for (const choice of chunks)
            yield format.choiceChunk(choice);
        const last = answer.index === answers.length - 1;
        yield format.indexedFinishChunk(answer.index, finishReason, last ? done : undefined);
    }
    if (options.includeUsage)
        yield format.usageChunk(done.usage);
}
