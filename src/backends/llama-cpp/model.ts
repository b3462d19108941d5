import {resolveChatWrapper, SpecialTokensText, type ChatHistoryItem, type ChatWrapper, type LlamaContext, type LlamaModel, type LlamaText} from "node-llama-cpp";
import type {BackendModel, IncrementalDetokenizer, ModelDescription, OutputConstraint, RenderedPrompt} from "../backend.js";
import type {ChatMessage, ResponseConstraint} from "../../runtime/types.js";
import {LlamaDetokenizer} from "./detokenizer.js";
import {LlamaCppSequence} from "./sequence.js";
import {DraftModelSource, vocabularySize} from "./draft-model.js";
import type {GrammarCache} from "./constraint.js";

/** A loaded GGUF with one context of `parallel` sequences. */
export class LlamaCppModel implements BackendModel {
    readonly sequences: readonly LlamaCppSequence[];
    private readonly chatWrapper: ChatWrapper;

    constructor(
        readonly description: ModelDescription,
        private readonly model: LlamaModel,
        private readonly context: LlamaContext,
        private readonly grammars: GrammarCache,
        private readonly draft?: {model: LlamaModel; context: LlamaContext}
    ) {
        this.sequences = Array.from({length: context.totalSequences}, (_, index) =>
            new LlamaCppSequence(index, context.getSequence({contextShift: {strategy: "eraseBeginning"}}), model,
                draft == null ? undefined : new DraftModelSource(draft.context.getSequence(), vocabularySize(draft.model)))
        );
        this.chatWrapper = resolveChatWrapper(model);
    }

    get chatTemplateName() {
        return this.chatWrapper.wrapperName;
    }

    renderChat(messages: readonly ChatMessage[]): RenderedPrompt {
        const history: ChatHistoryItem[] = messages.map(toHistoryItem);
        history.push({type: "model", response: []});
        const {contextText, stopGenerationTriggers} = this.chatWrapper.generateContextState({chatHistory: history});
        const tokens = contextText.tokenize(this.model.tokenizer);
        return {
            tokens,
            stopStrings: stopGenerationTriggers.flatMap(textOnlyTrigger),
            systemTokens: this.systemPrefixLength(history, tokens)
        };
    }

    /**
     * Where the leading system messages end in `tokens`: the common prefix with a rendering of
     * the system messages alone, which works for any template without knowing its markup.
     */
    private systemPrefixLength(history: readonly ChatHistoryItem[], tokens: readonly number[]): number | undefined {
        const system = history.findIndex((item) => item.type !== "system");
        if (system <= 0) return undefined;
        const alone = this.chatWrapper.generateContextState({chatHistory: [...history.slice(0, system), {type: "model", response: []}]})
            .contextText.tokenize(this.model.tokenizer);
        let common = 0;
        while (common < alone.length && common < tokens.length && alone[common] === tokens[common])
            common++;
        return common;
    }

    renderCompletion(prompt: string): RenderedPrompt {
        const tokens = this.model.tokenize(prompt);
        if (this.model.tokens.shouldPrependBosToken && this.model.tokens.bos != null)
            tokens.unshift(this.model.tokens.bos);
        return {tokens, stopStrings: []};
    }

    tokenize(text: string): number[] {
        return this.model.tokenize(text);
    }

    createDetokenizer(): IncrementalDetokenizer {
        return new LlamaDetokenizer(this.model);
    }

    prepareConstraint(constraint: ResponseConstraint): Promise<OutputConstraint> {
        return this.grammars.get(constraint);
    }

    async dispose() {
        await this.draft?.context.dispose();
        await this.draft?.model.dispose();
        await this.context.dispose();
        await this.model.dispose();
    }
}

function toHistoryItem(message: ChatMessage): ChatHistoryItem {
    switch (message.role) {
        case "system":
        case "developer":
            return {type: "system", text: message.content};
        case "assistant":
            return {type: "model", response: [message.content]};
        case "tool":
            return {type: "user", text: `Tool result:\n${message.content}`};
        default:
            return {type: "user", text: message.content};
    }
}

/**
 * Stop triggers made of plain text become stop strings. Triggers with special tokens (EOS,
 * EOT) need no string: the sequence ends on end-of-generation tokens by itself.
 */
function textOnlyTrigger(trigger: LlamaText): string[] {
    const parts: string[] = [];
    for (const value of trigger.values) {
        if (typeof value === "string")
            parts.push(value);
        else if (value instanceof SpecialTokensText)
            parts.push(value.value);
        else
            return [];
    }
    const text = parts.join("");
    return text.length > 0 ? [text] : [];
}
