import type {Context} from "hono";
import type {GenerationEngine} from "../../runtime/model-pool.js";
import type {FinishReason, GenerationRequest, GenerationStream, Timings, Usage} from "../../runtime/types.js";
import {toOpenAIError} from "./errors.js";
import {ChunkFormatter, completionObject, type CompletionKind} from "./format.js";
import {sseResponse, type SsePayload} from "./sse.js";

export interface GenerateRouteOptions {
    kind: CompletionKind;
    request: GenerationRequest;
    stream: boolean;
    includeUsage: boolean;
    /** Completions with `echo`: the prompt is sent back before the generated text. */
    echo?: string;
}

/** Runs one generation for an OpenAI endpoint and answers as JSON or as an SSE stream. */
export async function respondWithGeneration(c: Context, runtime: GenerationEngine, options: GenerateRouteOptions): Promise<Response> {
    const generation = await runtime.generate(options.request, {signal: c.req.raw.signal});
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
