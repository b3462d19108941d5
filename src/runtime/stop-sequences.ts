/**
 * Finds stop strings in streamed text, also when one spans several tokens, and never lets
 * any part of a stop string reach the client: text that could still turn into a stop string
 * is held back until the next piece decides it.
 */
export interface StopScanResult {
    /** Text safe to send now. */
    text: string;
    /** A stop string was found; `text` is everything before it and generation should end. */
    stopped: boolean;
}

export class StopSequenceScanner {
    private readonly stops: string[];
    private pending = "";

    /**
     * @param stops strings that end generation (empty strings are ignored)
     * @param holdTrailingWhitespace hold whitespace at the end until non-whitespace follows;
     *   `finish()` then drops it (JSON grammars pad their output with newlines).
     */
    constructor(stops: readonly string[], private readonly holdTrailingWhitespace = false) {
        this.stops = [...new Set(stops.filter((stop) => stop.length > 0))];
    }

    push(piece: string): StopScanResult {
        const text = this.pending + piece;
        let cut = -1;
        for (const stop of this.stops) {
            const at = text.indexOf(stop);
            if (at !== -1 && (cut === -1 || at < cut))
                cut = at;
        }
        if (cut !== -1) {
            this.pending = "";
            return {text: this.trimIfHeld(text.slice(0, cut)), stopped: true};
        }

        const held = Math.max(this.partialStopSuffixLength(text), this.trailingWhitespaceLength(text));
        this.pending = text.slice(text.length - held);
        return {text: text.slice(0, text.length - held), stopped: false};
    }

    /** The generation ended for another reason: release what was held for a stop string. */
    finish(): string {
        const rest = this.trimIfHeld(this.pending);
        this.pending = "";
        return rest;
    }

    private trimIfHeld(text: string) {
        return this.holdTrailingWhitespace ? text.trimEnd() : text;
    }

    private trailingWhitespaceLength(text: string) {
        if (!this.holdTrailingWhitespace)
            return 0;
        return text.length - text.trimEnd().length;
    }

    /** Longest suffix of `text` that is a proper prefix of some stop string. */
    private partialStopSuffixLength(text: string) {
        let longest = 0;
        for (const stop of this.stops) {
            const max = Math.min(stop.length - 1, text.length);
            for (let len = max; len > longest; len--) {
                if (text.endsWith(stop.slice(0, len))) {
                    longest = len;
                    break;
                }
            }
        }
        return longest;
    }
}
