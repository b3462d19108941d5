/**
 * Writes per stream are at most this often: 60 a second, a display's frame rate. A model slower
 * than ~60 tok/s still has every token written the moment it is sampled; faster ones send several
 * per write. On stories260K (~6,000 tok/s) going from 4 to 16 ms cut the SSE client's CPU time
 * per token by half and the server's JavaScript and helper threads' by a third, which the decode
 * thread on the core beside them gets back (docs/performance.md §3).
 */
export const STREAM_COALESCE_MS = 16;

/**
 * Decides when a streaming transport writes what it has queued.
 *
 * Writes are taken off the decode's critical path: node-llama-cpp dispatches the next decode
 * from a `setImmediate` queued while the current token is handed out, so a socket write in that
 * same turn delays every token by its cost (tens of µs on loopback: several percent of a small
 * model's decode rate). A flush runs two event-loop turns later instead, while the next token is
 * already decoding on its own thread, and at most once per `coalesceMs`: tokens that arrive in
 * between go out in one write, which bounds syscalls and client wake-ups for very fast models
 * (slower than 1 token per `coalesceMs`, every token is written on its own).
 */
export class FlushScheduler {
    private scheduled = false;
    private backstop?: NodeJS.Timeout;
    private lastFlushAt = 0;

    constructor(private readonly flush: () => void, private readonly coalesceMs: number) {}

    /** Something was queued; `urgent` skips coalescing (first token, final frames). */
    request(urgent = false) {
        if (this.scheduled) return;
        const elapsed = performance.now() - this.lastFlushAt;
        if (urgent || elapsed >= this.coalesceMs) {
            this.scheduled = true;
            setImmediate(this.afterDispatch);
        } else if (this.backstop == null)
            // A stream that pauses still gets its last tokens out.
            this.backstop = setTimeout(this.run, this.coalesceMs - elapsed);
    }

    /** Forgets any pending flush (the transport is going away). */
    cancel() {
        if (this.backstop != null) clearTimeout(this.backstop);
        this.backstop = undefined;
    }

    private readonly afterDispatch = () => setImmediate(this.run);

    private readonly run = () => {
        this.scheduled = false;
        this.cancel();
        this.lastFlushAt = performance.now();
        this.flush();
    };
}
