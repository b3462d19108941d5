import {newToolCallId} from "./tools.js";

/** A `delta.tool_calls` entry: the first for a call has id, type and name; later ones carry argument text. */
export type ToolCallDelta =
    | {index: number; id: string; type: "function"; function: {name: string; arguments: string}}
    | {index: number; function: {arguments: string}};

/** `{"name": "…", "arguments": ` at the start of a call, possibly after `[` or `,`. */
const CALL_HEAD = /^\s*[[,]?\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*/;

/**
 * Turns a grammar-forced answer (`{"name": …, "arguments": {…}}`, or an array of them) into
 * OpenAI's streamed tool-call deltas while it is generated: a call's id, type and name as soon
 * as its name is complete, then its arguments text as it grows, up to the brace that closes it.
 */
export class ToolCallStreamer {
    private text = "";
    /** Where scanning resumes in `text`. */
    private position = 0;
    private phase: "head" | "arguments" | "close" = "head";
    private depth = 0;
    private inString = false;
    private escaped = false;
    /** Start of the argument text not yet sent. */
    private unsent = 0;
    private calls = 0;

    /** Calls whose head has been sent. */
    get started() {
        return this.calls + (this.phase === "head" ? 0 : 1);
    }

    push(text: string): ToolCallDelta[] {
        this.text += text;
        const deltas: ToolCallDelta[] = [];
        for (;;) {
            if (this.phase === "head") {
                const head = CALL_HEAD.exec(this.text.slice(this.position));
                if (head == null) break;
                deltas.push({index: this.calls, id: newToolCallId(), type: "function", function: {name: JSON.parse(`"${head[1]}"`) as string, arguments: ""}});
                this.position += head[0].length;
                this.unsent = this.position;
                this.phase = "arguments";
                this.depth = 0;
            } else if (this.phase === "arguments") {
                const complete = this.scanArguments();
                if (this.position > this.unsent)
                    deltas.push({index: this.calls, function: {arguments: this.text.slice(this.unsent, this.position)}});
                this.unsent = this.position;
                if (!complete) break;
                this.phase = "close";
            } else {
                // The call object's own closing brace; the next call's head follows it.
                const close = /^\s*\}/.exec(this.text.slice(this.position));
                if (close == null) break;
                this.position += close[0].length;
                this.calls++;
                this.phase = "head";
            }
        }
        return deltas;
    }

    /** Advances over the arguments value; true once its closing brace has been passed. */
    private scanArguments(): boolean {
        for (; this.position < this.text.length; this.position++) {
            const char = this.text[this.position]!;
            if (this.inString) {
                if (this.escaped) this.escaped = false;
                else if (char === "\\") this.escaped = true;
                else if (char === "\"") this.inString = false;
                continue;
            }
            if (char === "\"") this.inString = true;
            else if (char === "{" || char === "[") this.depth++;
            else if (char === "}" || char === "]") {
                this.depth--;
                if (this.depth === 0) {
                    this.position++;
                    return true;
                }
            }
        }
        return false;
    }
}
