import {randomUUID} from "node:crypto";
import {WebSocket, type RawData} from "ws";
import {Outbox} from "./outbox.js";
import type {Logger} from "../../logger.js";
import type {GenerationEngine} from "../../runtime/model-pool.js";
import type {GenerationEvent, GenerationStream} from "../../runtime/types.js";
import {toOpenAIError} from "../openai/errors.js";
import {
    cancelledFrame,
    deltaPrefix,
    doneFrame,
    errorFrame,
    frameError,
    parseClientFrame,
    pongFrame,
    toGenerationRequest,
    type PreparedRequest,
    type RequestFrame
} from "./protocol.js";

export interface SessionLimits {
    /** Text frames larger than this (bytes) get a `frame_too_large` error frame. */
    maxFrameBytes: number;
    /** A request stops pulling tokens while the socket buffers more than this (bytes). */
    maxBufferedBytes: number;
    /** Requests one socket may have in flight; more get `too_many_requests`. */
    maxRequestsPerSocket: number;
    /** Deltas of one request written within this many ms of the last write go out as one frame. */
    coalesceMs: number;
    /** Counts a request against the client's rate; throws (429) when it is over. */
    admit?: () => void;
}

/** How often a request paused by backpressure checks whether the socket drained. */
const DRAIN_POLL_MS = 5;

type DoneEvent = Extract<GenerationEvent, {type: "done"}>;

/**
 * One client socket: parses its frames, runs its requests (each under its own
 * `AbortController`, keyed by the client's id) and encodes their events as frames.
 *
 * Per request: exactly one terminal frame, `done` or `error`, sent after the request has left
 * the in-flight map and given its sequence back, so its id may be reused as soon as the
 * terminal frame arrives. The one exception is a `duplicate_id` error, which ends nothing.
 */
export class WsSession {
    private readonly inFlight = new Map<string, AbortController>();
    private readonly runs = new Set<Promise<void>>();
    private readonly outbox: Outbox;
    private closed = false;
    /** Every socket is a session of its own unless a request names one: its KV stays its own. */
    private readonly connectionSession = `ws-${randomUUID()}`;

    constructor(
        private readonly socket: WebSocket,
        private readonly runtime: GenerationEngine,
        private readonly limits: SessionLimits,
        private readonly logger?: Logger
    ) {
        this.outbox = new Outbox(socket, limits.coalesceMs, (error) => logger?.warn({err: error}, "websocket: write failed"));
    }

    /** Handles one incoming message. Never throws. */
    receive(data: RawData, isBinary: boolean) {
        try {
            this.handle(data, isBinary);
        } catch (error) {
            this.logger?.warn({err: error}, "websocket: failed to handle a frame");
        }
    }

    /** Cancels every request of the socket; resolves once all of them have let go of their sequences. */
    async dispose(): Promise<void> {
        this.closed = true;
        this.outbox.clear();
        for (const controller of this.inFlight.values())
            controller.abort();
        await Promise.allSettled([...this.runs]);
    }

    private handle(data: RawData, isBinary: boolean) {
        if (this.closed) return;
        if (isBinary) {
            this.sendError(null, frameError(400, "Binary frames are not supported; send JSON text frames.", "unsupported_frame"));
            return;
        }
        const parsed = parseClientFrame(toText(data));
        if (byteLength(data) > this.limits.maxFrameBytes) {
            // Parsed anyway (ws already holds it in memory) so the error can name the request.
            const id = parsed.ok ? ("id" in parsed.frame ? parsed.frame.id : null) : parsed.id;
            this.sendError(id, frameError(413, `The frame is larger than the limit of ${this.limits.maxFrameBytes} bytes.`, "frame_too_large"));
            return;
        }
        if (!parsed.ok) {
            this.sendError(parsed.id, parsed.error);
            return;
        }
        const {frame} = parsed;
        switch (frame.type) {
            case "chat":
            case "completion":
                this.start(frame);
                return;
            case "cancel":
                // Idempotent: an id that is not (or no longer) in flight is ignored.
                this.inFlight.get(frame.id)?.abort();
                return;
            case "ping":
                this.send(pongFrame(frame.fields));
                return;
        }
    }

    private start(frame: RequestFrame) {
        const {id} = frame;
        if (this.inFlight.has(id)) {
            this.sendError(id, frameError(409, `A request with id '${id}' is already in flight on this socket.`, "duplicate_id", "id"));
            return;
        }
        try {
            this.limits.admit?.();
        } catch (error) {
            this.sendError(id, error);
            return;
        }
        if (this.inFlight.size >= this.limits.maxRequestsPerSocket) {
            this.sendError(id, frameError(429, `This socket already has ${this.inFlight.size} requests in flight (the limit).`, "too_many_requests"));
            return;
        }
        let prepared: PreparedRequest;
        try {
            prepared = toGenerationRequest(frame, this.connectionSession);
        } catch (error) {
            this.sendError(id, error);
            return;
        }
        const controller = new AbortController();
        this.inFlight.set(id, controller);
        const run = this.run(id, prepared, controller)
            .catch((error) => this.logger?.warn({err: error, id}, "websocket: request failed unexpectedly"))
            .finally(() => {
                this.runs.delete(run);
                if (this.inFlight.get(id) === controller) this.inFlight.delete(id);
            });
        this.runs.add(run);
    }

    private async run(id: string, {request, echo}: PreparedRequest, controller: AbortController): Promise<void> {
        const {signal} = controller;
        const receivedAt = performance.now();
        let stream: GenerationStream;
        try {
            stream = await this.runtime.generate(request, {signal});
        } catch (error) {
            this.inFlight.delete(id);
            if (signal.aborted)
                this.send(cancelledFrame(id, 0, performance.now() - receivedAt));
            else
                this.sendError(id, error);
            return;
        }

        let done: DoneEvent | undefined;
        try {
            const prefix = deltaPrefix(id);
            if (echo) this.sendDelta(prefix, echo, 0);
            for await (const event of stream) {
                if (event.type === "done") {
                    // Leaving the loop runs the generation's cleanup, so the sequence is free
                    // before the client hears `done`.
                    done = event;
                    break;
                }
                if (event.text.length === 0 || signal.aborted) continue;
                this.sendDelta(prefix, event.text, event.tokens);
                if (this.outbox.bufferedAmount > this.limits.maxBufferedBytes)
                    await this.drained(signal);
            }
        } catch (error) {
            this.inFlight.delete(id);
            if (signal.aborted)
                this.send(cancelledFrame(id, stream.promptTokens, performance.now() - receivedAt));
            else
                this.sendError(id, error);
            return;
        }
        this.inFlight.delete(id);
        // No `done` event: the request was cancelled before its first token.
        this.send(done == null
            ? cancelledFrame(id, stream.promptTokens, performance.now() - receivedAt)
            : doneFrame(id, done.finishReason, done.usage, done.timings));
    }

    /** Waits until the socket's send buffer is back under the limit (or the request ends). */
    private async drained(signal: AbortSignal) {
        while (!signal.aborted && this.socket.readyState === WebSocket.OPEN && this.outbox.bufferedAmount > this.limits.maxBufferedBytes)
            await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }

    private sendDelta(prefix: string, text: string, tokens: number) {
        if (!this.closed) this.outbox.pushDelta(prefix, text, tokens);
    }

    /** A frame for the whole socket (e.g. a `power` event). */
    broadcast(frame: string) {
        this.send(frame);
    }

    private send(frame: string) {
        if (this.closed || this.socket.readyState !== WebSocket.OPEN) return;
        this.outbox.push(frame);
    }

    private sendError(id: string | null, error: unknown) {
        const mapped = toOpenAIError(error);
        if (mapped.status >= 500 && mapped.status !== 503)
            this.logger?.warn({err: error, id}, "websocket: request failed");
        this.send(errorFrame(id, mapped));
    }
}

function byteLength(data: RawData): number {
    return Array.isArray(data) ? data.reduce((sum, part) => sum + part.length, 0) : data.byteLength;
}

function toText(data: RawData): string {
    if (Buffer.isBuffer(data)) return data.toString("utf8");
    if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
    return Buffer.from(data).toString("utf8");
}
