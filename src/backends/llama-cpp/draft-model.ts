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

    /** `vocabularySize`: the draft's; a target with a padded, larger vocabulary may emit ids the draft cannot read. */
    constructor(private readonly sequence: LlamaContextSequence, private readonly vocabularySize = Infinity) {}

    async draft(history: readonly number[], k: number): Promise<number[]> {
        if (history.some((token) => token >= this.vocabularySize)) return [];
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
 * Vocabularies may differ by this many trailing (padding) entries, as llama.cpp's speculative
 * decoding allows: Qwen2.5 7B's GGUF has 152,064 entries, 0.5B's 151,936, same tokenizer.
 */
const MAX_VOCABULARY_PADDING = 128;

/** Vocabulary entries of a model (its GGUF token list). */
export function vocabularySize(model: LlamaModel): number | undefined {
    return model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
}

/**
 * A draft model must tokenize exactly like the target: the same vocabulary (the target may have
 * up to 128 more padding entries, never fewer), same special tokens, same tokens for a probe text.
 * Anything else makes its drafts meaningless to verify.
 */
export function assertCompatibleDraft(target: LlamaModel, draft: LlamaModel, draftPath: string) {
    const [targetSize, draftSize] = [vocabularySize(target), vocabularySize(draft)];
    const problems: string[] = [];
    if (targetSize !== draftSize) {
        const padding = (targetSize ?? 0) - (draftSize ?? 0);
        if (targetSize == null || draftSize == null || padding < 0 || padding > MAX_VOCABULARY_PADDING)
            problems.push(`vocabulary sizes differ (${targetSize} vs ${draftSize})`);
        else {
            const [targetTokens, draftTokens] = [target.fileInfo.metadata.tokenizer.ggml.tokens, draft.fileInfo.metadata.tokenizer.ggml.tokens];
            const differing = Array.from({length: draftSize}, (_, index) => index).find((index) => targetTokens[index] !== draftTokens[index]);
            if (differing != null) problems.push(`vocabularies differ from token ${differing} on`);
        }
    }
    if (target.tokens.bos !== draft.tokens.bos || target.tokens.eos !== draft.tokens.eos)
        problems.push(`special tokens differ (BOS ${target.tokens.bos}/${draft.tokens.bos}, EOS ${target.tokens.eos}/${draft.tokens.eos})`);
    const [a, b] = [target.tokenize(PROBE), draft.tokenize(PROBE)];
    if (a.length !== b.length || a.some((token, index) => token !== b[index])) problems.push("they tokenize the same text differently");
    if (problems.length > 0)
        throw new DraftVocabularyError(`The draft model ${draftPath} cannot draft for this model: ${problems.join("; ")}. ` +
            `Use a smaller model of the same family (same tokenizer).`);
}
