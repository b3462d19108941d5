import type {LlamaContextSequence, LlamaModel, Token} from "node-llama-cpp";
import {commonPrefixLength} from "../../kv/block-hash.js";
import type {DraftSource} from "../../speculative/types.js";

/**
 * Drafts with a small model that shares the target's vocabulary: its own sequence follows the
 * target's text (reusing the longest common prefix, like the target does) and decodes k tokens
 * greedily. Greedy drafts are deterministic, which is what makes verification exact.
 */
export class DraftModelSource implements DraftSource {
    readonly kind = "draft-model" as const;

    constructor(private readonly sequence: LlamaContextSequence) {}

    async draft(history: readonly number[], k: number): Promise<number[]> {
        const held = this.sequence.contextTokens;
        // Keep at least one token to evaluate: its logits give the first draft.
        const keep = Math.min(commonPrefixLength(held, history), history.length - 1);
        if (this.sequence.nextTokenIndex > keep)
            await this.sequence.eraseContextTokenRanges([{start: keep, end: this.sequence.nextTokenIndex}]);
        const drafted: number[] = [];
        for await (const token of this.sequence.evaluate(history.slice(keep) as Token[], {temperature: 0})) {
            drafted.push(token);
            if (drafted.length >= k) break;
        }
        return drafted;
    }
}

export class DraftVocabularyError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "DraftVocabularyError";
    }
}

const PROBE = "Once upon a time, 12 friends said: \"Hello, world!\" — café, 日本, 🎉\n";

/**
 * A draft model must tokenize exactly like the target: same vocabulary size, same special
 * tokens, same tokens for a probe text. Anything else makes its drafts meaningless to verify.
 */
export function assertCompatibleDraft(target: LlamaModel, draft: LlamaModel, draftPath: string) {
    const size = (model: LlamaModel) => model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
    const problems: string[] = [];
    if (size(target) !== size(draft)) problems.push(`vocabulary sizes differ (${size(target)} vs ${size(draft)})`);
    if (target.tokens.bos !== draft.tokens.bos || target.tokens.eos !== draft.tokens.eos)
        problems.push(`special tokens differ (BOS ${target.tokens.bos}/${draft.tokens.bos}, EOS ${target.tokens.eos}/${draft.tokens.eos})`);
    const [a, b] = [target.tokenize(PROBE), draft.tokenize(PROBE)];
    if (a.length !== b.length || a.some((token, index) => token !== b[index])) problems.push("they tokenize the same text differently");
    if (problems.length > 0)
        throw new DraftVocabularyError(`The draft model ${draftPath} cannot draft for this model: ${problems.join("; ")}. ` +
            `Use a smaller model of the same family (same tokenizer).`);
}
