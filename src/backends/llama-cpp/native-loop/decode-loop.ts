import {acquireLock} from "lifecycle-utils";
import type {LlamaContext, LlamaContextSequence} from "node-llama-cpp";
import type {DecodeLoopAddon, DecodeLoopHandle, DecodeLoopRunResult, DecodeLoopSampling} from "./addon.js";

/**
 * A stream decoding alone on its context runs in the native decode loop (addon.ts): llama.cpp
 * decodes, samples and hands tokens over from one pool thread, with no JavaScript round trip per
 * token. While a run goes on this holds node-llama-cpp's locks (the sequence's "evaluate" lock
 * and the context lock, as node-llama-cpp's own state loading does), so nothing else decodes on
 * the context; the moment another stream starts or needs the context (`Contention`), the run
 * stops after its current token and hands the pending token back to node-llama-cpp's batched loop.
 * Afterwards node-llama-cpp's record of the sequence's tokens is brought up to date, so prefix
 * reuse, erasing and state files work as before.
 *
 * It touches node-llama-cpp internals of the pinned 3.21.1 (`_ctx`, `_lock`, `_contextTokens`,
 * `_nextTokenIndex`, the dispose guard and thread splitter); `attach` checks them and returns
 * undefined where any is missing.
 */

/**
 * Tokens handed over and not yet taken before the loop pauses: bounds the work wasted when a
 * stream stops (and keeps a paced stream's decoder idle), but must exceed what arrives per
 * wake-up. Sized per run from the rate so far: twice a wake-up interval's tokens, 4 to 64.
 */
function unconsumedLimit(tokensPerMs: number | undefined) {
    if (tokensPerMs == null) return 16;
    return Math.max(4, Math.min(64, Math.ceil(2 * SIGNAL_INTERVAL_MS * tokensPerMs) + 2));
}
/** How long one run may keep libuv's pool thread (file I/O and other native work queue behind it). */
const SLICE_MS = 20;
/**
 * Each wake-up of the JavaScript thread costs the pool thread ~15 µs (10% of a stories260K
 * token) and the JavaScript thread a turn of the event loop; faster tokens are handed over
 * together, at most this much later. Slower models (a 1B model takes 20 ms a token) still hand
 * over every token the moment it is sampled. The transports write at most every 16 ms
 * (STREAM_COALESCE_MS), so 4 ms delays nothing a client sees.
 */
const SIGNAL_INTERVAL_MS = 4;

export interface Contention {
    /** Another stream is generating or waiting to change the context. */
    readonly contended: boolean;
    /** Called whenever contention may have started; returns the unsubscribe function. */
    onContention(listener: () => void): () => void;
}

export const NO_CONTENTION: Contention = {contended: false, onContention: () => () => {}};

/** How a native run ended: done, or handing `pending` (not decoded yet: the input, or the token sampled last) back to node-llama-cpp. */
export type NativeRunEnd = {reason: "eog" | "limit"} | {reason: "handover"; pending: number[]};

interface ThreadAllocation {
    0: number;
    1: {dispose(): void};
}

interface ContextInternals {
    _ctx: object & {setThreads(threads: number): void};
    _backendContextDisposeGuard: {createPreventDisposalHandle(): {dispose(): void}};
    _reserveThreads(): void;
    _scheduleToFreeReservedThreads(): void;
    _threadSplitterConsumer?: {getAllocationToConsume(): ThreadAllocation | Promise<ThreadAllocation | undefined> | undefined};
}

interface SequenceInternals {
    _lock: object;
    _sequenceId: number;
    _contextTokens: number[];
    _nextTokenIndex: number;
    _loadedTokenPredictions: unknown[];
    needsCheckpoints: boolean;
    tokenPredictor?: unknown;
    tokenMeter: {useTokens(tokens: number, type: "input" | "output"): void};
}

export class NativeDecodeLoop {
    /** Runs and tokens, for /metrics-style checks and tests. */
    readonly stats = {runs: 0, tokens: 0, handovers: 0};
    /** Decode rate of the last run long enough to tell, tokens per ms. */
    private tokensPerMs?: number;

    private constructor(
        private readonly addon: DecodeLoopAddon,
        private readonly handle: DecodeLoopHandle,
        private readonly context: LlamaContext,
        /** The most input tokens one run decodes in its first batch: the context's batch size. */
        readonly maxInput: number
    ) {}

    /** The loop for `context`, or undefined (with the reason) where it cannot work on it. */
    static attach(addon: DecodeLoopAddon, context: LlamaContext): {loop?: NativeDecodeLoop; reason?: string} {
        const internals = context as unknown as Partial<ContextInternals>;
        if (internals._ctx == null || internals._backendContextDisposeGuard == null ||
            typeof internals._reserveThreads !== "function" || typeof internals._scheduleToFreeReservedThreads !== "function")
            return {reason: "node-llama-cpp's context internals differ from 3.21.1's"};
        let handle: DecodeLoopHandle;
        try {
            handle = addon.attach(internals._ctx);
        } catch (error) {
            return {reason: (error as Error).message};
        }
        // The pointer read from node-llama-cpp's object must be the context it reports.
        const seen = addon.describe(handle);
        const perSequence = Math.floor(context.contextSize / Math.max(1, seen.sequences));
        if (seen.sequences !== context.totalSequences || (seen.sequenceContextSize !== context.contextSize && seen.sequenceContextSize !== perSequence))
            return {reason: `the native context does not match node-llama-cpp's (${JSON.stringify(seen)} vs contextSize ${context.contextSize}, ${context.totalSequences} sequences)`};
        return {loop: new NativeDecodeLoop(addon, handle, context, Math.max(1, seen.batchSize))};
    }

    /** Whether `sequence` may run natively now (nothing else is using the context). */
    canRun(sequence: LlamaContextSequence, contention: Contention): boolean {
        if (contention.contended || this.context.disposed || sequence.disposed) return false;
        const internals = sequence as unknown as SequenceInternals;
        return !internals.needsCheckpoints && internals.tokenPredictor == null && internals._loadedTokenPredictions.length === 0;
    }

    /**
     * Decodes `input` (1 to `maxInput` tokens, in one batch: the new part of a prompt, or a token
     * sampled earlier) and the tokens it samples after it, yielding each sampled token, until end
     * of generation, `maxTokens`, or contention (then it returns the pending tokens for
     * node-llama-cpp's loop to evaluate next). The last yielded token is not decoded yet, exactly
     * as in node-llama-cpp's `evaluate`.
     */
    async *generate(sequence: LlamaContextSequence, input: readonly number[], options: {
        sampling: DecodeLoopSampling;
        maxTokens: number;
        contention: Contention;
        /** Drops the sequence's tokens from `length` on, without starving behind the other streams' batches. */
        truncate(length: number): Promise<void>;
    }): AsyncGenerator<number, NativeRunEnd, void> {
        const internals = sequence as unknown as SequenceInternals;
        const context = this.context as unknown as ContextInternals;
        const evaluatorLock = await acquireLock([internals._lock, "evaluate"]);
        const contextLock = await acquireLock([this.context, "context"]);
        let locked = true;
        const queue: number[] = [];
        const emitted: number[] = [];
        let wake: (() => void) | undefined;
        const onTokens = (tokens: number[]) => {
            for (const token of tokens) {
                queue.push(token);
                emitted.push(token);
            }
            wake?.();
        };
        const startPosition = internals._nextTokenIndex;
        let position = startPosition;
        let yielded = 0;
        /** The next queued token, counted as taken (so the loop may run on). */
        const take = () => {
            this.addon.consumed(this.handle, 1);
            yielded++;
            return queue.shift()!;
        };
        let finished = false;
        let running: Promise<DecodeLoopRunResult> | undefined;
        let preventDisposal: {dispose(): void} | undefined;
        // node-llama-cpp's thread splitter hands out threads per decode; held until the run is over.
        let threadAllocation: {dispose(): void} | undefined;
        const releaseThreads = () => {
            threadAllocation?.dispose();
            threadAllocation = undefined;
        };
        let unsubscribe: (() => void) | undefined;

        /** Brings node-llama-cpp's bookkeeping up to the cells, keeping `keep` of the decoded tokens, and lets go of the context. */
        const settle = (keep: number) => {
            if (!locked) return;
            locked = false;
            const decoded = position - startPosition;
            if (keep < decoded) this.addon.erase(this.handle, internals._sequenceId, startPosition + keep);
            const kept = [...input, ...emitted].slice(0, keep);
            internals._contextTokens.push(...kept);
            internals._nextTokenIndex += kept.length;
            internals.tokenMeter.useTokens(kept.length, "input");
            internals.tokenMeter.useTokens(emitted.length, "output");
            unsubscribe?.();
            context._scheduleToFreeReservedThreads();
            preventDisposal?.dispose();
            contextLock.dispose();
            evaluatorLock.dispose();
        };

        try {
            if (options.contention.contended || position !== sequence.nextTokenIndex) {
                finished = true;
                return {reason: "handover", pending: [...input]};
            }
            preventDisposal = context._backendContextDisposeGuard.createPreventDisposalHandle();
            unsubscribe = options.contention.onContention(() => this.addon.stop(this.handle));
            this.addon.configure(this.handle, options.sampling);
            context._reserveThreads();
            this.stats.runs++;

            let end: NativeRunEnd | undefined;
            let next = [...input];
            // The last run's rate on this context: a first run sized for an unknown rate stops early
            // (at 16 tokens, a fraction of a wake-up interval for a small model) and costs a restart.
            let tokensPerMs = this.tokensPerMs;
            while (end == null) {
                const allocation = await context._threadSplitterConsumer?.getAllocationToConsume();
                threadAllocation = allocation?.[1];
                // Checked right before a run starts: a stop() before it would be lost.
                if (options.contention.contended) {
                    releaseThreads();
                    this.stats.handovers++;
                    end = {reason: "handover", pending: next};
                    break;
                }
                if (allocation?.[0] != null) context._ctx.setThreads(allocation[0]);
                let result: DecodeLoopRunResult | undefined;
                let failure: unknown;
                const before = emitted.length;
                const runStarted = performance.now();
                try {
                    running = this.addon.run(this.handle, {
                        sequence: internals._sequenceId, position, input: next,
                        limit: Math.min(2 ** 31 - 1, Math.max(1, options.maxTokens - before)),
                        unconsumedLimit: unconsumedLimit(tokensPerMs), sliceMs: SLICE_MS, signalIntervalMs: SIGNAL_INTERVAL_MS
                    }, onTokens);
                } catch (error) {
                    releaseThreads();
                    throw error;
                }
                running.then((value) => {
                    result = value;
                    wake?.();
                }, (error: unknown) => {
                    failure = error ?? new Error("decode failed");
                    wake?.();
                });
                // Hand tokens over as they come; the run is over once its last token arrived too.
                while (result == null || emitted.length < before + result.emitted) {
                    if (failure != null) break;
                    if (queue.length > 0) {
                        yield take();
                        continue;
                    }
                    await new Promise<void>((resolve) => wake = resolve);
                    wake = undefined;
                }
                running = undefined;
                releaseThreads();
                if (failure != null) {
                    // Whatever the failed slice decoded is unknown to node-llama-cpp: drop it.
                    this.addon.erase(this.handle, internals._sequenceId, position);
                    throw failure;
                }
                position = result!.position;
                if (result!.emitted >= 4) this.tokensPerMs = tokensPerMs = result!.emitted / Math.max(0.001, performance.now() - runStarted);
                if (emitted.length > 0) next = [emitted.at(-1)!];
                if (result!.reason === "eog") end = {reason: "eog"};
                else if (result!.reason === "limit" || emitted.length >= options.maxTokens) end = {reason: "limit"};
                // A run that handed nothing over and would only be started again: never spin, hand over.
                else if (result!.reason === "stopped" || result!.reason === "context-full" || options.contention.contended || result!.emitted === 0) {
                    this.stats.handovers++;
                    end = {reason: "handover", pending: next};
                } else {
                    // "slice" or "backpressure": hand over what is queued, then run on. Starting the
                    // next slice first, with tokens still queued, kept a model loading beside the
                    // stream from getting its turn until the stream ended (test/model-pool.test.ts).
                    while (queue.length > 0 && !options.contention.contended)
                        yield take();
                }
            }
            // Everything decoded stays; the context is free for the others before the rest is handed over.
            settle(position - startPosition);
            while (queue.length > 0)
                yield take();
            this.stats.tokens += emitted.length;
            finished = true;
            return end;
        } finally {
            if (!finished) {
                // The consumer stopped early (or a decode failed): keep what it took, as node-llama-cpp would.
                if (running != null) {
                    this.addon.stop(this.handle);
                    const result = await running.catch(() => undefined);
                    if (result != null) position = result.position;
                    else this.addon.erase(this.handle, internals._sequenceId, position);
                }
                releaseThreads();
                this.stats.tokens += yielded;
                const decoded = position - startPosition;
                // The input, and every token taken but the last (sampled, not decoded: node-llama-cpp's pending token).
                const taken = input.length - 1 + Math.max(yielded, 1);
                if (locked) settle(Math.min(decoded, taken));
                else if (decoded > taken) {
                    // Settled with every decoded token already; the consumer left before taking them all.
                    await options.truncate(sequence.nextTokenIndex - (decoded - taken));
                }
            } else if (locked) {
                settle(position - startPosition);
            }
            releaseThreads();
        }
    }
}
