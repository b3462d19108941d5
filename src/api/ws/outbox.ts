import {WebSocket} from "ws";
import {deltaFrame} from "./protocol.js";
import {FlushScheduler} from "../flush-scheduler.js";

/** A delta waiting in the outbox; later deltas of the same request are appended to it. */
interface PendingDelta {
    prefix: string;
    text: string;
    tokens: number;
}

type Pending = string | PendingDelta;

/**
 * The frames waiting to be written to one socket, in order. A `FlushScheduler` decides when
 * they go out: off the decode's critical path, and at most once per `coalesceMs`, so the deltas
 * a request produced in between go out as one frame (`tokens` adds up).
 * Frames of one request keep their order; frames of different requests may interleave.
 */
export class Outbox {
    private queue: Pending[] = [];
    /** The queued delta of each request, which its next deltas extend. */
    private readonly openDeltas = new Map<string, PendingDelta>();
    private queuedChars = 0;
    private readonly scheduler: FlushScheduler;

    constructor(
        private readonly socket: WebSocket,
        coalesceMs: number,
        /** Called with anything a write throws (it runs from a timer, where nothing may escape). */
        private readonly onError: (error: unknown) => void
    ) {
        this.scheduler = new FlushScheduler(() => this.flush(), coalesceMs);
    }

    /** Bytes not yet on the wire: the socket's buffer plus (about) what is still queued here. */
    get bufferedAmount() {
        return this.socket.bufferedAmount + this.queuedChars;
    }

    /** Queues a delta; `prefix` is the request's constant frame start (see `deltaPrefix`). */
    pushDelta(prefix: string, text: string, tokens: number) {
        const pending = this.openDeltas.get(prefix);
        if (pending !== undefined) {
            pending.text += text;
            pending.tokens += tokens;
        } else {
            const delta = {prefix, text, tokens};
            this.queue.push(delta);
            this.openDeltas.set(prefix, delta);
        }
        this.queuedChars += text.length;
        this.scheduler.request();
    }

    push(frame: string) {
        this.queue.push(frame);
        // Whatever comes after this frame must stay after it.
        this.openDeltas.clear();
        this.queuedChars += frame.length;
        this.scheduler.request(true);
    }

    /** Drops what has not been written (the socket is going away). */
    clear() {
        this.scheduler.cancel();
        this.queue = [];
        this.openDeltas.clear();
        this.queuedChars = 0;
    }

    private flush() {
        const pending = this.queue;
        this.queue = [];
        this.openDeltas.clear();
        this.queuedChars = 0;
        if (this.socket.readyState !== WebSocket.OPEN) return;
        try {
            for (const entry of pending)
                this.socket.send(typeof entry === "string" ? entry : deltaFrame(entry.prefix, entry.text, entry.tokens));
        } catch (error) {
            this.onError(error);
        }
    }
}
