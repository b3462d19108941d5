import type {FinishReason, TokenLogprob} from "../../runtime/types.js";
import {toChatLogprobs, toCompletionLogprobs, toOpenAIFinishReason, type CompletionKind, type OpenAIFinishReason} from "./format.js";
import {parseToolCalls, toolCallStart, type ToolPlan} from "./tools.js";
import {ToolCallStreamer} from "./tool-stream.js";

/**
 * One answer (choice) of a response that needs more than the plain text path: an index
 * (`n` > 1), logprobs, or tools. Turns the answer's deltas into OpenAI choice objects, for a
 * stream (`push`, then `finish`) or for the whole response (`push`, then `choice`).
 *
 * With tools: under `required` the answer is a call (the grammar makes it one); streamed, its
 * deltas go out as `delta.tool_calls` while it is generated. Under `auto`, an answer that starts
 * like a call (`toolCallStart`) is held back; at the end a held answer that
 * parses as calls of declared tools becomes `tool_calls`, anything else ordinary content.
 */
export class Answer {
    private held = "";
    private heldLogprobs: TokenLogprob[] = [];
    private mode: "undecided" | "text" | "tool";
    /** Completions: where the next token's text starts (text_offset). */
    private offset = 0;
    private text = "";
    private readonly logprobs: TokenLogprob[] = [];
    private readonly streamer?: ToolCallStreamer;

    constructor(
        readonly index: number,
        private readonly kind: CompletionKind,
        private readonly options: {logprobs: boolean; tools?: ToolPlan; echo?: string; stream?: boolean}
    ) {
        this.mode = options.tools == null ? "text" : options.tools.mode === "required" ? "tool" : "undecided";
        // A forced call has a known layout, so it can be streamed while generated; under `auto`
        // the model may write anything, so a possible call is held and parsed at the end.
        if (options.stream === true && options.tools?.mode === "required") this.streamer = new ToolCallStreamer();
        if (options.echo != null) {
            this.text = options.echo;
            this.offset = options.echo.length;
        }
    }

    /** Adds a delta; returns the stream chunks' choice objects it releases (none while held). */
    push(text: string, logprobs: readonly TokenLogprob[] | undefined): object[] {
        if (this.mode === "text") return this.content(text, logprobs ?? []);
        this.held += text;
        if (this.streamer != null)
            return this.streamer.push(text).map((delta) => ({index: this.index, delta: {tool_calls: [delta]}, logprobs: null, finish_reason: null}));
        if (logprobs != null) this.heldLogprobs.push(...logprobs);
        if (this.mode === "undecided") {
            const start = toolCallStart(this.held);
            if (start !== "maybe") this.mode = start === "yes" ? "tool" : "text";
            if (this.mode === "text") return this.release();
        }
        return [];
    }

    /** The stream's closing choice objects: held content or tool-call chunks, then the finish chunk's reason. */
    finish(reason: FinishReason): {chunks: object[]; finishReason: OpenAIFinishReason} {
        if (this.streamer != null && this.streamer.started > 0)
            return {chunks: [], finishReason: reason === "length" ? "length" : "tool_calls"};
        const calls = this.mode === "text" || this.options.tools == null ? undefined : parseToolCalls(this.held, this.options.tools);
        if (calls == null)
            return {chunks: this.release(), finishReason: toOpenAIFinishReason(reason)};
        // As OpenAI streams a call: id, type and name first, then the arguments.
        const chunks = calls.flatMap((call, position) => [
            {index: this.index, delta: {tool_calls: [{index: position, id: call.id, type: "function", function: {name: call.function.name, arguments: ""}}]}, logprobs: null, finish_reason: null},
            {index: this.index, delta: {tool_calls: [{index: position, function: {arguments: call.function.arguments}}]}, logprobs: null, finish_reason: null}
        ]);
        return {chunks, finishReason: "tool_calls"};
    }

    /** The whole answer as a non-streaming choice object. */
    choice(reason: FinishReason): object {
        this.release();
        const calls = this.mode === "text" || this.options.tools == null ? undefined : parseToolCalls(this.text, this.options.tools);
        if (this.kind === "completion") {
            const logprobs = this.options.logprobs ? toCompletionLogprobs(this.logprobs, this.options.echo?.length ?? 0).logprobs : null;
            return {index: this.index, text: this.text, logprobs, finish_reason: toOpenAIFinishReason(reason)};
        }
        if (calls != null)
            return {index: this.index, message: {role: "assistant", content: null, tool_calls: calls, refusal: null}, logprobs: null, finish_reason: "tool_calls"};
        const logprobs = this.options.logprobs ? {content: toChatLogprobs(this.logprobs), refusal: null} : null;
        return {index: this.index, message: {role: "assistant", content: this.text, refusal: null}, logprobs, finish_reason: toOpenAIFinishReason(reason)};
    }

    private release(): object[] {
        if (this.held.length === 0 && this.heldLogprobs.length === 0) return [];
        const chunks = this.content(this.held, this.heldLogprobs);
        this.held = "";
        this.heldLogprobs = [];
        return chunks;
    }

    private content(text: string, logprobs: readonly TokenLogprob[]): object[] {
        this.text += text;
        this.logprobs.push(...logprobs);
        if (text.length === 0 && logprobs.length === 0) return [];
        if (this.kind === "chat")
            return [{index: this.index, delta: {content: text}, logprobs: this.options.logprobs ? {content: toChatLogprobs(logprobs), refusal: null} : null, finish_reason: null}];
        let legacy = null;
        if (this.options.logprobs) {
            const converted = toCompletionLogprobs(logprobs, this.offset);
            this.offset = converted.offset;
            legacy = converted.logprobs;
        }
        return [{index: this.index, text, logprobs: legacy, finish_reason: null}];
    }
}
