import {SpecialTokensText, type ChatHistoryItem, type ChatWrapper, type LlamaContext, type LlamaEmbeddingContext, type LlamaModel, type LlamaText, type Token} from "node-llama-cpp";
import type {BackendModel, IncrementalDetokenizer, ModelDescription, OutputConstraint, RenderedPrompt} from "../backend.js";
import type {ChatMessage, ResponseConstraint} from "../../runtime/types.js";
import {LlamaDetokenizer} from "./detokenizer.js";
import {InvalidRequestError} from "../../runtime/errors.js";
import {LlamaCppSequence} from "./sequence.js";
import {BatchGatherer} from "./batch-gather.js";
import {gateFirstSampleAfterDecode} from "./sample-gate.js";
import type {NativeDecodeLoop} from "./native-loop/decode-loop.js";
import {DraftModelSource, vocabularySize} from "./draft-model.js";
import type {AcceptanceOptions} from "../../speculative/acceptance.js";
import type {GrammarCache} from "./constraint.js";

/** A loaded GGUF with one context of `parallel` sequences. */
export class LlamaCppModel implements BackendModel {
    readonly sequences: readonly LlamaCppSequence[];
    readonly supportsLogprobs = true;

    constructor(
        readonly description: ModelDescription,
        private readonly model: LlamaModel,
        private readonly context: LlamaContext,
        private readonly grammars: GrammarCache,
        /** Resolved by the backend off the event loop (chat-wrapper.ts). */
        private readonly chatWrapper: ChatWrapper,
        private readonly draft?: {model: LlamaModel; context: LlamaContext},
        speculationTuning?: AcceptanceOptions,
        nativeLoop?: NativeDecodeLoop
    ) {
        if (context.totalSequences > 1) gateFirstSampleAfterDecode(context);
        const gatherer = context.totalSequences > 1 ? BatchGatherer.install(context) : undefined;
        this.sequences = Array.from({length: context.totalSequences}, (_, index) =>
            new LlamaCppSequence(index, context.getSequence({contextShift: {strategy: "eraseBeginning"}}), model, {
                draftSource: draft == null ? undefined : new DraftModelSource(draft.context.getSequence(), vocabularySize(draft.model)),
                speculationTuning,
                gatherer,
                nativeLoop
            })
        );
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

    tokenizeWith(text: string, {special}: {special: boolean}): number[] {
        if (!special) return this.model.tokenize(text);
        const tokens = this.model.tokenize(text, true);
        if (this.model.tokens.shouldPrependBosToken && this.model.tokens.bos != null && tokens[0] !== this.model.tokens.bos)
            tokens.unshift(this.model.tokens.bos);
        return tokens;
    }

    detokenize(tokens: readonly number[], special = false): string {
        return this.model.detokenize(tokens as Token[], special);
    }

    tokenBytes(token: number): Uint8Array {
        if (this.model.getTokenAttributes(token as Token).byte) {
            // A byte-fallback token's vocabulary entry reads "<0xHH>".
            const match = /^<0x([0-9A-Fa-f]{2})>$/.exec(tokenString(this.model, token) ?? "");
            if (match != null) return Uint8Array.of(Number.parseInt(match[1]!, 16));
        }
        return new TextEncoder().encode(this.tokenText(token));
    }

    tokenText(token: number): string {
        // After another token, a word-initial token keeps its leading space (alone it loses it).
        this.plainToken ??= this.model.tokenize("a")[0] ?? (0 as Token);
        return this.model.detokenize([token as Token], false, [this.plainToken]);
    }

    private plainToken?: Token;

    get vocabularySize(): number {
        const metadata = this.model.fileInfo.metadata as unknown as {tokenizer?: {ggml?: {tokens?: readonly unknown[]}}} | undefined;
        const listed = metadata?.tokenizer?.ggml?.tokens?.length;
        if (listed != null && listed > 0) return listed;
        const architecture = (this.model.fileInfo.metadata as unknown as Record<string, {vocab_size?: number}> | undefined)?.[this.description.architecture];
        return architecture?.vocab_size ?? 0;
    }

    private embeddingContext?: Promise<LlamaEmbeddingContext>;
    private embedQueue: Promise<unknown> = Promise.resolve();

    async embed(inputs: readonly (string | readonly number[])[], signal?: AbortSignal) {
        const contextSize = Math.min(this.model.trainContextSize, this.description.contextSize);
        this.embeddingContext ??= this.model.createEmbeddingContext({
            contextSize,
            threads: this.description.threads
        });
        this.embeddingContext.catch(() => (this.embeddingContext = undefined));
        const context = await this.embeddingContext;
        // One request's inputs at a time: the embedding context has a single sequence.
        const run = this.embedQueue.then(async () => {
            const vectors: number[][] = [];
            let tokens = 0;
            for (const input of inputs) {
                signal?.throwIfAborted();
                const resolved = typeof input === "string" ? this.model.tokenize(input) : [...input] as Token[];
                // node-llama-cpp needs one cell to spare.
                if (resolved.length >= contextSize || resolved.length === 0)
                    throw new InvalidRequestError(resolved.length === 0
                        ? `input[${vectors.length}] has no tokens.`
                        : `input[${vectors.length}] has ${resolved.length} tokens; the embedding context takes at most ${contextSize - 1}.`, "input");
                tokens += resolved.length;
                vectors.push([...(await context.getEmbeddingFor(resolved)).vector]);
            }
            return {vectors, tokens};
        });
        this.embedQueue = run.catch(() => {});
        return run;
    }

    createDetokenizer(): IncrementalDetokenizer {
        return new LlamaDetokenizer(this.model);
    }

    prepareConstraint(constraint: ResponseConstraint): Promise<OutputConstraint> {
        return this.grammars.get(constraint);
    }

    async dispose() {
        await (await this.embeddingContext?.catch(() => undefined))?.dispose();
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

/** The vocabulary entry of a token (node-llama-cpp keeps it on its native model object). */
function tokenString(model: LlamaModel, token: number): string | undefined {
    const native = (model as unknown as {_model?: {getTokenString?(token: number): string}})._model;
    return native?.getTokenString?.(token);
}
