import type {GenerationEngine, ModelHost} from "../../runtime/model-pool.js";
import type {GenerationEvent, GenerationRequest, GenerationStream, ResponseConstraint, Usage} from "../../runtime/types.js";
import {toolCallConstraint, toolCallStart, type ToolPlan} from "./tools.js";

/**
 * The call grammar for an `auto` request, compiled ahead; undefined when the tools' schemas use
 * keywords no grammar can enforce (such answers are then only parsed, never constrained).
 */
export async function lazyToolGrammar(runtime: ModelHost, request: GenerationRequest, plan: ToolPlan): Promise<ResponseConstraint | undefined> {
    if (plan.mode !== "auto" || (request.n ?? 1) !== 1 || request.logprobs != null) return undefined;
    const forced = toolCallConstraint({...plan, mode: "required"})!;
    try {
        await runtime.use(request.model, (engine, model) => engine.prepareConstraint(forced, model.id));
        return forced;
    } catch {
        return undefined;
    }
}

/**
 * `tool_choice: "auto"` with a grammar that only applies once the model starts a call (what
 * llama.cpp calls a lazy grammar, which node-llama-cpp does not offer): the answer is generated
 * freely; if it starts like a call (a JSON object or array, a `<tool_call>` tag, a ```json fence),
 * that attempt is dropped and
 * the answer is generated again under the tools' call grammar, from the same prompt (still in
 * the sequence's KV, so only its last token is evaluated again). Free text never pays for a
 * grammar; a call always parses and matches its parameters. Usage counts both attempts.
 */
export function withLazyToolGrammar(runtime: GenerationEngine, request: GenerationRequest, forced: ResponseConstraint, first: GenerationStream, signal?: AbortSignal): GenerationStream {
    async function* events(): AsyncGenerator<GenerationEvent> {
        const held: (GenerationEvent & {type: "delta"})[] = [];
        let text = "";
        let decided = false;
        let dropped = 0;
        const iterator = first[Symbol.asyncIterator]();
        try {
            for (;;) {
                const next = await iterator.next();
                if (next.done === true) {
                    yield* held.splice(0);
                    return;
                }
                const event = next.value;
                if (decided || event.type === "done") {
                    yield* held.splice(0);
                    yield event;
                    continue;
                }
                held.push(event);
                text += event.text;
                const start = toolCallStart(text);
                if (start === "maybe") continue;
                decided = true;
                if (start === "no") continue;
                dropped = held.reduce((sum, entry) => sum + entry.tokens, 0);
                break;
            }
        } finally {
            await iterator.return?.();
        }
        // The free attempt started a call: generate it again under the grammar.
        const second = await runtime.generate({...request, responseFormat: forced}, {signal});
        for await (const event of second) {
            if (event.type === "done")
                yield {...event, usage: withDropped(event.usage, dropped)};
            else
                yield event;
        }
    }
    return {
        id: first.id,
        model: first.model,
        created: first.created,
        promptTokens: first.promptTokens,
        [Symbol.asyncIterator]: events
    };
}

function withDropped(usage: Usage, dropped: number): Usage {
    return {...usage, completionTokens: usage.completionTokens + dropped, totalTokens: usage.totalTokens + dropped};
}

