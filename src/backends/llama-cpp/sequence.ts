import {LlamaGrammarEvaluationState, type LlamaContextSequence, type LlamaModel, type SequenceEvaluateOptions, type Token} from "node-llama-cpp";
import type {BackendSequence, GeneratedToken, SequenceGenerateOptions} from "../backend.js";
import type {SamplingOptions} from "../../runtime/types.js";
import {LlamaOutputConstraint} from "./constraint.js";
import {NO_CONTEXT_SHIFT, SlidingWindowShift} from "./context-shift.js";
import {speculativeDecode} from "./speculative-decode.js";
import type {DraftSource} from "../../speculative/types.js";
import {effectiveRepeatPenalty, effectiveTemperature} from "./sampling-guards.js";

const DEFAULT_PENALTY_LAST_N = 64;
/** Penalties look at most this far back (`repeat_last_n` ≤ 4096); older history is trimmed. */
const HISTORY_TRIM = 8192;

/** One llama.cpp sequence: its KV cells and the decode loop over them. */
export class LlamaCppSequence implements BackendSequence {
    constructor(
        readonly index: number,
        private readonly sequence: LlamaContextSequence,
        private readonly model: LlamaModel,
        readonly draftSource?: DraftSource
    ) {}

    get cachedTokens(): readonly number[] {
        return this.sequence.contextTokens;
    }

    async *generate(prompt: readonly number[], {sampling, constraint, slidingWindow, speculation}: SequenceGenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
        const reused = await this.reuseCachedPrefix(prompt);
        const history = [...prompt];
        if (speculation != null && canSpeculate(sampling, constraint, slidingWindow)) {
            const plain = {...this.evaluateOptions(sampling, history, constraint), contextShift: NO_CONTEXT_SHIFT};
            let first = true;
            for await (const generated of speculativeDecode(this.sequence, this.model, prompt.slice(reused), history, sampling, plain, speculation)) {
                if (first) {
                    first = false;
                    generated.reusedPromptTokens = reused;
                }
                yield generated;
            }
            return;
        }
        const options = this.evaluateOptions(sampling, history, constraint);
        const shift = slidingWindow == null ? undefined : new SlidingWindowShift(slidingWindow);
        options.contextShift = shift?.options ?? NO_CONTEXT_SHIFT;

        let first = true;
        for await (const token of this.sequence.evaluate(prompt.slice(reused) as Token[], options)) {
            if (options.repeatPenalty) {
                history.push(token);
                // With a sliding window a generation can go on for ever.
                if (history.length >= 2 * HISTORY_TRIM) history.splice(0, HISTORY_TRIM);
            }
            const dropped = shift?.takeDropped() ?? 0;
            const generated: GeneratedToken = dropped > 0 ? {token, droppedTokens: dropped} : {token};
            if (first) {
                first = false;
                generated.reusedPromptTokens = reused;
            }
            yield generated;
        }
    }

    async truncate(length: number) {
        if (this.sequence.nextTokenIndex > length)
            await this.sequence.eraseContextTokenRanges([{start: length, end: this.sequence.nextTokenIndex}]);
    }

    async saveState(file: string) {
        await this.sequence.saveStateToFile(file);
    }

    async loadState(file: string) {
        await this.sequence.loadStateFromFile(file, {acceptRisk: true});
    }

    /**
     * Keeps the KV of the longest common prefix of what the sequence holds and `prompt`, and
     * erases the rest. At least one prompt token is always evaluated so there are logits to sample.
     */
    private async reuseCachedPrefix(prompt: readonly number[]) {
        const cached = this.sequence.contextTokens;
        const limit = Math.min(cached.length, prompt.length - 1);
        let common = 0;
        while (common < limit && cached[common] === prompt[common])
            common++;

        if (common === 0)
            await this.sequence.clearHistory();
        else if (this.sequence.nextTokenIndex > common)
            await this.sequence.eraseContextTokenRanges([{start: common, end: this.sequence.nextTokenIndex}]);
        return common;
    }

    private evaluateOptions(sampling: SamplingOptions, history: number[], constraint?: SequenceGenerateOptions["constraint"]): SequenceEvaluateOptions {
        const options: SequenceEvaluateOptions = {
            temperature: effectiveTemperature(sampling.temperature),
            topK: sampling.topK,
            topP: sampling.topP,
            minP: sampling.minP,
            seed: sampling.seed
        };
        const {presencePenalty = 0, frequencyPenalty = 0, repeatPenalty = 1} = sampling;
        if (presencePenalty !== 0 || frequencyPenalty !== 0 || repeatPenalty !== 1) {
            const lastN = sampling.penaltyLastN ?? DEFAULT_PENALTY_LAST_N;
            options.repeatPenalty = {
                punishTokens: () => history.slice(-lastN) as Token[],
                maxPunishTokens: lastN,
                penalty: effectiveRepeatPenalty(repeatPenalty),
                presencePenalty,
                frequencyPenalty
            };
        }
        if (constraint instanceof LlamaOutputConstraint)
            options.grammarEvaluationState = new LlamaGrammarEvaluationState({model: this.model, grammar: constraint.grammar});
        return options;
    }
}

/**
 * Speculation verifies drafts with the target's plain sampler; penalties (which depend on the
 * tokens before each position), grammars (whose state advances token by token) and a sliding
 * window (which shifts positions mid-batch) are left to the plain decode loop.
 */
function canSpeculate(sampling: SamplingOptions, constraint: SequenceGenerateOptions["constraint"], slidingWindow: SequenceGenerateOptions["slidingWindow"]) {
    const penalties = (sampling.presencePenalty ?? 0) !== 0 || (sampling.frequencyPenalty ?? 0) !== 0 || (sampling.repeatPenalty ?? 1) !== 1;
    return !penalties && constraint == null && slidingWindow == null;
}
