import type {LlamaContext, LlamaContextSequence} from "node-llama-cpp";

/**
 * Keeps node-llama-cpp's continuous batching full, fair and in one piece. Three problems, all
 * measured with four streams on the 1B-shaped model (2 cores; scripts/bench, docs/performance.md):
 *
 * - **Split micro-batches.** With several sequences llama.cpp keeps one KV stream per sequence and
 *   cuts a batch into micro-batches of *consecutive increasing* sequence ids
 *   (llama_batch_allocr::split_equal, sequential). Queued as 1, 2, 3, 0 — the order streams
 *   happened to ask — four tokens decoded as 3 rows by GEMV and then 1: 73 ms instead of 50. The
 *   queue is kept sorted by sequence id.
 * - **Partial batches.** node-llama-cpp composes the next batch the moment the previous one's
 *   tokens are sampled; a stream whose continuation (take the token, ask for the next) has not
 *   run yet misses it, and four streams decoded as batches of 3 and 1. After each batch, while
 *   more sequences are generating than have queued, the event loop may turn (at most
 *   `MAX_WAIT_MS`) before the next batch is composed.
 * - **Starved KV edits.** The batch loop holds the context lock while decodes are queued, and
 *   erasing a sequence's cells (prefix reuse at the start of a request, rejected drafts,
 *   truncation, state files) takes the same lock: a new request waited for the running streams
 *   to finish before it could start. Such work goes through `exclusive()`: at the next batch
 *   boundary the queued decodes step aside, the batch loop ends and the lock passes to that
 *   work, and they are queued again once it is done. A sequence still missing at the deadline
 *   (e.g. in a context shift inside node-llama-cpp) gets the same treatment.
 *
 * Together: four streams over SSE 43 → 60 tok/s (native build), 42 → 57 (prebuilt).
 *
 * This hooks node-llama-cpp internals present in the pinned 3.21.1 (`_decodeTokens`, the decode
 * queue, `_scheduleDecode`); if they are missing the context runs as node-llama-cpp made it.
 */
const MAX_WAIT_MS = 2;

interface QueuedDecode {
    sequenceId: number;
}

interface ContextInternals {
    _decodeTokens(params: {sequenceId: number; afterBatchAction?: (sequenceStateLength: number) => unknown}, mapper: unknown): Promise<unknown>;
    _queuedDecodes: QueuedDecode[];
    _queuedDecodeSequenceIds: Set<number>;
    _scheduleDecode(): void;
}

/** llama.cpp's id of a node-llama-cpp sequence (internal field of the pinned version). */
export function sequenceIdOf(sequence: LlamaContextSequence): number {
    return (sequence as unknown as {_sequenceId: number})._sequenceId;
}

export class BatchGatherer {
    private generating = 0;
    private stashed: QueuedDecode[] = [];
    /** Sequences whose cells `exclusive()` work is about to change (one entry per waiting call). */
    private readonly editing: number[] = [];
    /** Batches that waited for a stream, and times the queue could not step aside (a queued decode of the sequence being edited). */
    readonly stats = {waits: 0, conflicts: 0};
    private readonly contentionListeners = new Set<() => void>();

    private constructor(private readonly context: ContextInternals) {}

    static install(context: LlamaContext): BatchGatherer | undefined {
        const internals = context as unknown as Partial<ContextInternals>;
        if (typeof internals._decodeTokens !== "function" || typeof internals._scheduleDecode !== "function" ||
            !Array.isArray(internals._queuedDecodes) || !(internals._queuedDecodeSequenceIds instanceof Set))
            return undefined;
        const gatherer = new BatchGatherer(internals as ContextInternals);
        const decode = internals._decodeTokens.bind(context);
        internals._decodeTokens = (params, mapper) => {
            const decoded = decode({
                ...params,
                afterBatchAction: (sequenceStateLength) => {
                    const own = params.afterBatchAction?.(sequenceStateLength);
                    return own instanceof Promise ? own.then(() => gatherer.afterBatch()) : gatherer.afterBatch();
                }
            }, mapper);
            // Queued synchronously above; batches are composed later, from the queue in its order.
            gatherer.sortQueue();
            return decoded;
        };
        return gatherer;
    }

    /** A sequence starts generating; call the returned function when it stops. */
    begin(): () => void {
        this.generating++;
        if (this.generating > 1) this.notifyContention();
        let ended = false;
        return () => {
            if (ended) return;
            ended = true;
            this.generating--;
        };
    }

    /**
     * Runs work on `sequenceId` that takes the context lock (erasing cells, loading state) without
     * waiting for the other streams to finish.
     */
    async exclusive<T>(sequenceId: number, work: () => Promise<T>): Promise<T> {
        this.editing.push(sequenceId);
        this.notifyContention();
        try {
            return await work();
        } finally {
            this.editing.splice(this.editing.indexOf(sequenceId), 1);
            if (this.editing.length === 0) this.restore();
        }
    }

    /** More than one stream generates, or work waits to change the context: a lone stream's native loop must hand over. */
    get contended(): boolean {
        return this.generating > 1 || this.editing.length > 0;
    }

    /** `listener` runs whenever contention may have begun; returns the unsubscribe function. */
    onContention(listener: () => void): () => void {
        this.contentionListeners.add(listener);
        return () => this.contentionListeners.delete(listener);
    }

    private notifyContention() {
        for (const listener of [...this.contentionListeners]) listener();
    }

    /**
     * Orders the queue by sequence id. With several sequences llama.cpp keeps one KV stream per
     * sequence and splits a batch into micro-batches of *consecutive increasing* sequence ids
     * (llama_batch_allocr::split_equal, sequential): a batch queued as 1, 2, 3, 0 decoded as two
     * micro-batches (3 rows by GEMV, then 1) — 73 ms instead of 50 for the four tokens.
     */
    sortQueue() {
        const queue = this.context._queuedDecodes;
        for (let index = 1; index < queue.length; index++) {
            const decode = queue[index]!;
            let at = index;
            while (at > 0 && queue[at - 1]!.sequenceId > decode.sequenceId) {
                queue[at] = queue[at - 1]!;
                at--;
            }
            queue[at] = decode;
        }
    }

    /** undefined (no waiting, no extra promise hop) unless another sequence has yet to queue. */
    private afterBatch(): Promise<void> | undefined {
        if (this.editing.length > 0) {
            this.stepAside();
            return undefined;
        }
        if (this.generating < 2 || this.context._queuedDecodeSequenceIds.size >= this.generating) return undefined;
        return this.wait();
    }

    private async wait() {
        this.stats.waits++;
        const deadline = performance.now() + MAX_WAIT_MS;
        while (this.context._queuedDecodeSequenceIds.size < this.generating && this.editing.length === 0 && performance.now() < deadline) {
            await new Promise((resolve) => setImmediate(resolve));
        }
        if (this.editing.length > 0) this.stepAside();
        else if (this.context._queuedDecodeSequenceIds.size < this.generating) {
            // Someone may be waiting for the lock where we cannot see it; let it in, then go on.
            this.stepAside();
            setImmediate(() => this.restore());
        }
    }

    /** Takes the queued decodes out, so node-llama-cpp's batch loop ends and releases the context lock. */
    private stepAside() {
        const queue = this.context._queuedDecodes;
        if (queue.length === 0) return;
        // A queued decode of a sequence about to be edited goes first, as it would without us:
        // its positions were fixed when it was queued.
        if (queue.some((decode) => this.editing.includes(decode.sequenceId))) {
            this.stats.conflicts++;
            return;
        }
        this.stashed.push(...queue.splice(0));
        for (const decode of this.stashed) this.context._queuedDecodeSequenceIds.delete(decode.sequenceId);
    }

    private restore() {
        if (this.stashed.length === 0) return;
        const stashed = this.stashed.splice(0);
        this.context._queuedDecodes.unshift(...stashed);
        for (const decode of stashed) this.context._queuedDecodeSequenceIds.add(decode.sequenceId);
        this.sortQueue();
        this.context._scheduleDecode();
    }
}
