import type {ServerResponse} from "node:http";
import type {Context} from "hono";
import {RESPONSE_ALREADY_SENT} from "@hono/node-server/utils/response";
import {FlushScheduler, STREAM_COALESCE_MS} from "../flush-scheduler.js";

const SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no"
};

/** A stream stops pulling tokens while more than this many bytes wait for a slow client. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

/** A whole `data:` payload, or generated text that the writer merges and formats at write time. */
export type SsePayload = string | {text: string};

/**
 * Streams `payloads` as SSE `data:` events straight to Node's response, ending with
 * `data: [DONE]`. Consecutive `{text}` payloads waiting for the same write become one event,
 * formatted by `formatText`. Writes go through a `FlushScheduler` (off the decode's critical path,
 * coalesced for very fast models); a slow client pauses its own generation through
 * back-pressure instead of buffering it; a client that goes away ends the generation.
 */
export function sseResponse(c: Context, payloads: AsyncGenerator<SsePayload, void, void>, formatText: (text: string) => string): Response {
    const outgoing = (c.env as {outgoing?: ServerResponse} | undefined)?.outgoing;
    if (outgoing == null)
        throw new Error("SSE streaming needs the Node.js server adapter (@hono/node-server)");

    outgoing.writeHead(200, SSE_HEADERS);
    outgoing.flushHeaders();
    void pump(payloads, new SseWriter(outgoing, formatText));
    return RESPONSE_ALREADY_SENT;
}

async function pump(payloads: AsyncGenerator<SsePayload, void, void>, writer: SseWriter) {
    const stop = () => void payloads.return().catch(() => {});
    writer.onClose(stop);
    try {
        for await (const payload of payloads) {
            if (typeof payload === "string") writer.write(`data: ${payload}\n\n`);
            else writer.writeText(payload.text);
            if (writer.bufferedBytes > MAX_BUFFERED_BYTES)
                await writer.drained();
        }
        writer.write("data: [DONE]\n\n", true);
    } catch {
        // The payloads turn generation errors into error events; anything else means the
        // connection is unusable, and ending it is all that is left to do.
    } finally {
        writer.end();
    }
}

class SseWriter {
    private pending = "";
    /** Generated text not yet formatted into a chunk. */
    private text = "";
    private writes = 0;
    private readonly scheduler = new FlushScheduler(() => this.flush(), STREAM_COALESCE_MS);

    constructor(private readonly outgoing: ServerResponse, private readonly formatText: (text: string) => string) {}

    get bufferedBytes() {
        return this.outgoing.writableLength + this.pending.length + this.text.length;
    }

    writeText(text: string) {
        this.text += text;
        this.scheduler.request(this.writes++ < 2);
    }

    write(text: string, urgent = false) {
        this.takeText();
        this.pending += text;
        // The role chunk and the first text go out at once: time to first token is not coalesced.
        this.scheduler.request(urgent || this.writes++ < 2);
    }

    /** Resolves when the client has taken the buffered bytes, or has gone away. */
    drained(): Promise<void> {
        return new Promise((resolve) => {
            const done = () => {
                this.outgoing.off("drain", done);
                this.outgoing.off("close", done);
                resolve();
            };
            this.outgoing.once("drain", done);
            this.outgoing.once("close", done);
        });
    }

    onClose(listener: () => void) {
        this.outgoing.once("close", listener);
    }

    end() {
        this.scheduler.cancel();
        this.flush();
        if (!this.outgoing.writableEnded)
            this.outgoing.end();
    }

    /** Formats the waiting text as one chunk, in order before whatever comes next. */
    private takeText() {
        if (this.text.length === 0) return;
        this.pending += `data: ${this.formatText(this.text)}\n\n`;
        this.text = "";
    }

    private flush() {
        this.takeText();
        if (this.pending.length === 0 || this.outgoing.writableEnded || this.outgoing.destroyed)
            return;
        const text = this.pending;
        this.pending = "";
        this.outgoing.write(text);
    }
}
