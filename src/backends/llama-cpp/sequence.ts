import {LlamaGrammarEvaluationState, type LlamaContextSequence, type LlamaModel, type SequenceEvaluateOptions, type Token} from "node-llama-cpp";
import type {BackendSequence, GeneratedToken, SequenceGenerateOptions} from "../backend.js";
import type {SamplingOptions} from "../../runtime/types.js";
import {LlamaOutputConstraint} from "./constraint.js";

const DEFAULT_PENALTY_LAST_N = 64;

/** One llama.cpp sequence: its KV cells and the decode loop over them. */
export class LlamaCppSequence implements BackendSequence {
    constructor(
        readonly index: number,
        private readonly sequence: LlamaContextSequence,
        private readonly model: LlamaModel
    ) {}

    get cachedTokens(): readonly number[] {
        return this.sequence.contextTokens;
    }

    async *generate(prompt: readonly number[], {sampling, constraint}: SequenceGenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
        const reused = await this.reuseCachedPrefix(prompt);
        const history = [...prompt];
        const options = this.evaluateOptions(sampling, history, constraint);

        let first = true;
        for await (const token of this.sequence.evaluate(prompt.slice(reused) as Token[], options)) {
            if (options.repeatPenalty)
                history.push(token);
            if (first) {
                first = false;
                yield {token, reusedPromptTokens: reused};
            } else
                yield {token};
        }
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
            temperature: sampling.temperature,
            topK: sampling.topK,
            topP: sampling.topP,
            minP: sampling.minP,
            seed: sampling.seed,
            // The runtime bounds generation by the context size, so a shift never happens silently.
            contextShift: {strategy: "eraseBeginning", size: 0}
        };
        const {presencePenalty = 0, frequencyPenalty = 0, repeatPenalty = 1} = sampling;
        if (presencePenalty !== 0 || frequencyPenalty !== 0 || repeatPenalty !== 1) {
            const lastN = sampling.penaltyLastN ?? DEFAULT_PENALTY_LAST_N;
            options.repeatPenalty = {
                punishTokens: () => history.slice(-lastN) as Token[],
                maxPunishTokens: lastN,
                penalty: repeatPenalty,
                presencePenalty,
                frequencyPenalty
            };
        }
        if (constraint instanceof LlamaOutputConstraint)
            options.grammarEvaluationState = new LlamaGrammarEvaluationState({model: this.model, grammar: constraint.grammar});
        return options;
    }
}
