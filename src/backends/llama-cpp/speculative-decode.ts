import type {LlamaContextSequence, LlamaModel, SequenceEvaluateOptions, Token} from "node-llama-cpp";
import type {SamplingOptions} from "../../runtime/types.js";
import type {GeneratedToken} from "../backend.js";
import {AcceptanceTracker} from "../../speculative/acceptance.js";
import type {DraftSource} from "../../speculative/types.js";
import {effectiveTemperature} from "./sampling-guards.js";

/**
 * Draft-and-verify decoding on one sequence. Each drafting step evaluates the pending token plus
 * up to k draft tokens in one batch, sampling the target's own next token at every position;
 * drafts are accepted while they equal what the target sampled, and the target's token at the
 * first mismatch (or after the last draft) is kept too. For deterministic drafts (prompt lookup,
 * a greedy draft model) accepting x exactly when the target samples x *is* rejection sampling:
 * x is kept with probability p(x), and on rejection the target's token is distributed as p
 * without x, renormalized — so the output distribution is unchanged, and greedy output is
 * token-identical to plain decoding. Rejected drafts are erased from the KV cache.
 *
 * While the tracker pauses drafting, tokens come from the plain `evaluate()` loop, so a pause
 * costs nothing against plain decoding.
 */
export async function* speculativeDecode(
    sequence: LlamaContextSequence,
    model: LlamaModel,
    unevaluated: readonly number[],
    history: number[],
    sampling: SamplingOptions,
    plainOptions: SequenceEvaluateOptions,
    source: DraftSource,
    tracker = new AcceptanceTracker(),
    /** Runs work that takes the context lock (erasing rejected drafts); see batch-gather.ts. */
    exclusive: <T>(work: () => Promise<T>) => Promise<T> = (work) => work()
): AsyncGenerator<GeneratedToken, void, void> {
    const sample = {temperature: effectiveTemperature(sampling.temperature), topK: sampling.topK, topP: sampling.topP, minP: sampling.minP, seed: sampling.seed};
    let pending = [...unevaluated];
    while (true) {
        // Drafts must fit in the sequence: a context shift mid-batch would silently drop the prompt.
        const room = sequence.contextSize - sequence.nextTokenIndex - pending.length;
        const k = Math.min(tracker.nextK(), Math.max(0, room - 1));
        if (k === 0) {
            // Plain phase: as many tokens as the pause lasts. The last one yielded is not in KV yet.
            const started = performance.now();
            const budget = Math.max(1, tracker.pausedTokens());
            let produced = 0;
            let last: number | undefined;
            for await (const token of sequence.evaluate(pending as Token[], plainOptions)) {
                history.push(token);
                last = token;
                produced++;
                yield {token};
                if (produced >= budget) break;
            }
            // evaluate() ends by itself only at an end-of-generation token.
            if (last == null || produced < budget) return;
            tracker.plain(produced, performance.now() - started);
            pending = [last];
            continue;
        }

        const started = performance.now();
        const draft = await source.draft(history, k);
        const verified = [pending.at(-1)!, ...draft];
        const start = sequence.nextTokenIndex;
        const results = await sequence.controlledEvaluate([
            ...pending.slice(0, -1) as Token[],
            ...verified.map((token) => [token as Token, {generateNext: {token: true, options: sample}}] as [Token, {generateNext: {token: true; options: typeof sample}}])
        ], {contextShift: plainOptions.contextShift});
        const offset = pending.length - 1;
        let accepted = 0;
        while (accepted < draft.length && results[offset + accepted]?.next.token === draft[accepted]) accepted++;
        const next = results[offset + accepted]?.next.token;

        // Drop the KV of drafts the target did not take (positions after the last accepted one).
        const keep = start + pending.length + accepted;
        if (sequence.nextTokenIndex > keep)
            await exclusive(() => sequence.eraseContextTokenRanges([{start: keep, end: sequence.nextTokenIndex}]));

        const out = [...draft.slice(0, accepted)];
        if (next != null) out.push(next);
        for (const [index, token] of out.entries()) {
            if (model.isEogToken(token as Token)) return;
            history.push(token);
            yield index === out.length - 1 && draft.length > 0 ? {token, speculation: {drafted: draft.length, accepted}} : {token};
        }
        // Timed until the consumer asked for more, like the plain phase: what the caller sees.
        if (draft.length > 0) tracker.step(draft.length, accepted, performance.now() - started);
        if (next == null) return;
        pending = [next];
    }
}
