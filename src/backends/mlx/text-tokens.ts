import type {MlxChatMessage} from "./mlx-api.js";

/**
 * MLX's API is text in, text out; the runtime speaks tokens. These tables stand in: a rendered
 * prompt is one id that maps back to its messages (padded to an estimated token count, so context
 * checks and usage see a plausible size), and each streamed text piece is one id that the
 * detokenizer turns back into its text.
 */

const FIRST_ID = 1 << 24;
/** Rendered prompts kept for their generation; older ones (never generated) are forgotten. */
const MAX_PENDING_PROMPTS = 256;

/** Four characters a token, plus a few for each message's template markup: an estimate, not a count. */
export function estimateTokens(text: string): number {
    return Math.ceil(text.length / 4);
}

export class MlxPromptTable {
    private readonly prompts = new Map<number, MlxChatMessage[]>();
    private next = FIRST_ID;

    render(messages: MlxChatMessage[]): number[] {
        const id = this.next++;
        this.prompts.set(id, messages);
        if (this.prompts.size > MAX_PENDING_PROMPTS) this.prompts.delete(this.prompts.keys().next().value!);
        const length = Math.max(1, messages.reduce((sum, message) => sum + estimateTokens(message.content) + 4, 0));
        return [id, ...new Array<number>(length - 1).fill(0)];
    }

    /** The messages of a rendered prompt, once. */
    take(tokens: readonly number[]): MlxChatMessage[] | undefined {
        const id = tokens[0];
        if (id == null) return undefined;
        const messages = this.prompts.get(id);
        this.prompts.delete(id);
        return messages;
    }
}

export class MlxTextPieces {
    private readonly pieces = new Map<number, string>();
    private next = FIRST_ID;

    add(text: string): number {
        const id = this.next++;
        this.pieces.set(id, text);
        return id;
    }

    /** The text of a piece, once (the detokenizer consumes it). */
    take(id: number): string {
        const text = this.pieces.get(id) ?? "";
        this.pieces.delete(id);
        return text;
    }

    /** Forgets pieces a cancelled stream produced but nobody detokenized. */
    drop(ids: Iterable<number>) {
        for (const id of ids) this.pieces.delete(id);
    }
}
