import type {LlamaModel, Token} from "node-llama-cpp";
import type {IncrementalDetokenizer} from "../backend.js";

/** How many earlier tokens are passed as context so leading spaces come out right. */
const CONTEXT_TOKENS = 4;
/** A UTF-8 character has at most 4 bytes, so at most 4 byte-tokens can be incomplete. */
const MAX_HELD_TOKENS = 4;

/**
 * Detokenizes one token at a time. Byte-fallback tokens can split a character; while the text
 * of the held tokens ends in U+FFFD the tokens are held until the character is complete.
 */
export class LlamaDetokenizer implements IncrementalDetokenizer {
    private readonly context: Token[] = [];
    private held: Token[] = [];

    constructor(private readonly model: LlamaModel) {}

    push(token: number): string {
        this.held.push(token as Token);
        const text = this.model.detokenize(this.held, false, this.context);
        if (text.endsWith("\uFFFD") && this.held.length < MAX_HELD_TOKENS)
            return "";
        this.release();
        return text;
    }

    flush(): string {
        if (this.held.length === 0)
            return "";
        const text = this.model.detokenize(this.held, false, this.context);
        this.release();
        return text;
    }

    private release() {
        this.context.push(...this.held);
        if (this.context.length > CONTEXT_TOKENS)
            this.context.splice(0, this.context.length - CONTEXT_TOKENS);
        this.held = [];
    }
}
