import type {BackendSequence} from "../backends/backend.js";
import {blockHashes, commonPrefixLength} from "./block-hash.js";
import {BlockPool, type BlockCounts} from "./block-pool.js";
import {PrefixIndex} from "./prefix-index.js";
import type {SpillEntry, SpillStore} from "./spill-store.js";

/** Added to a pinned sequence's eviction rank: more than any `performance.now()` reading. */
const SESSION_PIN = 1e15;
/**
 * After an eviction, sequences are written to disk as soon as they go idle (write-behind) for
 * this long: with more conversations than sequences, the next eviction then costs nothing on the
 * critical path. Without that pressure nothing is written until an eviction needs it.
 */
const PRESSURE_WINDOW_MS = 60_000;

export interface KvManagerOptions {
    blockSize: number;
    /** Tokens of KV each sequence can hold. */
    sequenceCapacity: number;
    /** Goes into every block hash: prefixes of different models never match. */
    modelIdentity: string;
    /** The disk tier; without it evicted sequences are simply dropped. */
    spill?: SpillStore;
    onEvent?: (event: string, details: Record<string, unknown>) => void;
}

export interface KvStats {
    blocks: BlockCounts;
    requests: number;
    /** Requests that reused at least one full block of their prompt. */
    prefixHits: number;
    promptTokens: number;
    reusedPromptTokens: number;
    /** Idle sequences whose tokens were dropped to make room for another prompt. */
    evictions: number;
    spills: number;
    restores: number;
    /** State files refused before loading (damaged, or from another model). */
    rejectedStates: number;
    spilledStates: number;
    spilledBytes: number;
}

interface Plan {
    restore?: SpillEntry;
    /** Prompt tokens expected to be served from KV. */
    reuse: number;
}

/**
 * llama.cpp decodes a batch in micro-batches of consecutive sequence ids (one KV stream per
 * sequence, `split_equal` in sequential mode; see backends/llama-cpp/batch-gather.ts): a stream
 * on a sequence apart from the running ones decodes in a micro-batch of its own, every step, and
 * the CPU's repacked Q4_0 kernels batch only from four rows up (fewer go row by row). On the
 * 1B-shaped model here (2 threads, flash attention on) four streams on sequences 0, 1, 3, 4 took
 * 72 ms a step against 47–50 ms on 0–3: ~24 ms per step apart, about three prompt tokens' prefill
 * (7.6 ms each). Counted so per decoded token, over at most the first 256 tokens (streams end at
 * different times, after which it matters less where one sits).
 */
const BATCH_SPLIT_COST_IN_PROMPT_TOKENS = 3;
const BATCH_SPLIT_HORIZON_TOKENS = 256;

/**
 * Decides where a prompt runs and what its sequence holds before it starts:
 * the free sequence or spilled state with the longest common prefix (a session's own state
 * first), spilling the evicted sequence's tokens to disk when they are worth keeping.
 * The scheduler only sees `choose()`; the pool and the index stay inside.
 */
export class KvManager {
    private readonly pool: BlockPool;
    private readonly spillIndex = new PrefixIndex<SpillEntry>();
    private readonly indexed = new Set<SpillEntry>();
    private readonly plans = new Map<number, Plan>();
    private readonly owners = new Map<number, string>();
    private readonly lastUsed = new Map<number, number>();
    /** The spilled entry whose tokens a sequence holds exactly (no need to save it again). */
    private readonly savedAs = new Map<number, SpillEntry>();
    /** Sequences whose tokens past this length must not be reused (see `release`). */
    private readonly dirty = new Map<number, number>();
    /** Write-behind saves in flight, awaited before the sequence is used again. */
    private readonly pendingSaves = new Map<number, Promise<void>>();
    private lastEvictionAt = -Infinity;
    private readonly counters = {requests: 0, prefixHits: 0, promptTokens: 0, reusedPromptTokens: 0, evictions: 0, spills: 0, restores: 0, rejectedStates: 0};

    constructor(private readonly sequenceCount: number, private readonly options: KvManagerOptions) {
        this.pool = new BlockPool(sequenceCount, Math.floor(options.sequenceCapacity / options.blockSize), options.blockSize);
        for (const entry of options.spill?.list() ?? [])
            this.indexEntry(entry);
    }

    /** Picks the free sequence for `prompt` (synchronous: called by the scheduler). */
    choose(free: readonly BackendSequence[], prompt: readonly number[], session?: string, decodeTokens = 0): BackendSequence {
        // Net tokens of prefill saved: the common prefix, minus the cache this choice throws away
        // (cheaper with a disk tier, dearer when another session pinned it), plus what staying
        // in one batch with the running streams saves, in whole blocks. On a tie the session's own
        // sequence wins, then one that joins the busy ones, then the one cheapest to evict.
        const freeIndexes = new Set(free.map((sequence) => sequence.index));
        const busy = (index: number) => index >= 0 && index < this.sequenceCount && !freeIndexes.has(index);
        const batchSaving = Math.min(decodeTokens, BATCH_SPLIT_HORIZON_TOKENS) * BATCH_SPLIT_COST_IN_PROMPT_TOKENS;
        const rank = (sequence: BackendSequence) => {
            const held = this.usableTokens(sequence);
            // Less than a block in common (a chat template's opening) is no reason to use a cache.
            const common = atLeastABlock(commonPrefixLength(held, prompt), this.options.blockSize);
            const owner = this.owners.get(sequence.index);
            const lossWeight = (this.options.spill == null ? 1 : 0.25) * (owner != null && owner !== session ? 4 : 1);
            // -1: the stream would decode as a micro-batch of its own; 0: it joins a busy run;
            // 1: it bridges two, which then decode as one (a micro-batch less for everyone).
            const joins = (busy(sequence.index - 1) ? 1 : 0) + (busy(sequence.index + 1) ? 1 : 0) - 1;
            const batchGain = free.length < this.sequenceCount ? joins + 1 : 0;
            const saved = Math.floor((common - lossWeight * (held.length - common) + batchGain * batchSaving) / this.options.blockSize);
            return [saved, owner != null && owner === session ? 1 : 0, joins, -this.evictionRank(sequence), common];
        };
        let best = free[0]!;
        let bestRank = rank(best);
        for (const sequence of free.slice(1)) {
            const candidate = rank(sequence);
            if (isGreater(candidate, bestRank)) {
                best = sequence;
                bestRank = candidate;
            }
        }
        const bestCommon = bestRank[4]!;

        const spilled = this.bestSpilled(prompt, session);
        // A restore pays for itself only when it brings at least a block more than what is live.
        if (spilled != null && spilled.common >= bestCommon + this.options.blockSize) {
            const victim = [...free].sort((a, b) => this.evictionRank(a) - this.evictionRank(b))[0]!;
            this.plans.set(victim.index, {restore: spilled.entry, reuse: spilled.common});
            return victim;
        }
        this.plans.set(best.index, {reuse: Math.max(0, bestCommon)});
        return best;
    }

    /**
     * Makes `sequence` ready for `prompt`: saves what it would lose (when worth keeping),
     * restores a chosen spilled state, and reserves blocks for prompt + `maxTokens`.
     */
    async prepare(sequence: BackendSequence, prompt: readonly number[], maxTokens: number) {
        const plan = this.plans.get(sequence.index) ?? {reuse: 0};
        this.plans.delete(sequence.index);
        await this.pendingSaves.get(sequence.index);
        const cleanPrefix = this.dirty.get(sequence.index);
        if (cleanPrefix != null) {
            this.dirty.delete(sequence.index);
            await sequence.truncate(cleanPrefix);
        }
        const held = sequence.cachedTokens;
        const kept = plan.restore == null ? commonPrefixLength(held, prompt) : 0;
        if (held.length - kept >= this.options.blockSize) {
            this.counters.evictions++;
            this.lastEvictionAt = performance.now();
            await this.spillIfWorthIt(sequence, held);
        }

        let reuse = plan.restore == null ? kept : 0;
        if (plan.restore != null && (await this.restore(sequence, plan.restore)))
            reuse = plan.reuse;
        reuse = Math.min(reuse, prompt.length - 1);

        this.counters.requests++;
        this.counters.promptTokens += prompt.length;
        this.counters.reusedPromptTokens += reuse;
        if (reuse >= this.options.blockSize) this.counters.prefixHits++;
        this.pool.reserve(sequence.index, prompt.length + maxTokens);
    }

    /**
     * The request on `sequence` ended; what it holds is now cached for later prompts.
     * `cleanPrefix`: only that many leading tokens are a true prefix (a sliding window moved:
     * the KV after the sinks was computed with tokens that are gone); the rest is dropped
     * before the sequence is used again.
     */
    release(sequence: BackendSequence, session?: string, cleanPrefix?: number) {
        if (cleanPrefix != null) this.dirty.set(sequence.index, cleanPrefix);
        this.pool.release(sequence.index, cleanPrefix ?? sequence.cachedTokens.length);
        this.lastUsed.set(sequence.index, performance.now());
        if (session != null) this.owners.set(sequence.index, session);
        else this.owners.delete(sequence.index);

        const underPressure = performance.now() - this.lastEvictionAt < PRESSURE_WINDOW_MS;
        if (this.options.spill != null && underPressure && cleanPrefix == null && sequence.cachedTokens.length >= this.options.blockSize) {
            const save = this.spillIfWorthIt(sequence, sequence.cachedTokens)
                .finally(() => this.pendingSaves.delete(sequence.index));
            this.pendingSaves.set(sequence.index, save);
        }
    }

    /** Resolves when no write-behind save is running (before the model is freed). */
    async settle() {
        await Promise.all(this.pendingSaves.values());
    }

    /** Writes every sequence's tokens to disk (shutdown with session persistence). */
    async persist(sequences: readonly BackendSequence[]) {
        await this.settle();
        for (const sequence of sequences) {
            const cleanPrefix = this.dirty.get(sequence.index);
            if (cleanPrefix != null) await sequence.truncate(cleanPrefix);
            this.dirty.delete(sequence.index);
            if (sequence.cachedTokens.length >= this.options.blockSize)
                await this.spillIfWorthIt(sequence, sequence.cachedTokens);
        }
    }

    private usableTokens(sequence: BackendSequence): readonly number[] {
        const cleanPrefix = this.dirty.get(sequence.index);
        const held = sequence.cachedTokens;
        return cleanPrefix == null ? held : held.slice(0, cleanPrefix);
    }

    stats(): KvStats {
        const spill = this.options.spill;
        return {
            blocks: this.pool.counts(),
            ...this.counters,
            spilledStates: spill?.list().length ?? 0,
            spilledBytes: spill?.bytes ?? 0
        };
    }

    /**
     * Lower ranks are evicted first: empty sequences, then the least recently used anonymous
     * ones, then those pinned by a session (least recently used first).
     */
    private evictionRank(sequence: BackendSequence) {
        if (sequence.cachedTokens.length === 0) return -1;
        const pinned = this.owners.has(sequence.index) ? SESSION_PIN : 0;
        return pinned + (this.lastUsed.get(sequence.index) ?? 0);
    }

    private bestSpilled(prompt: readonly number[], session?: string) {
        const spill = this.options.spill;
        if (spill == null) return undefined;
        const match = this.spillIndex.longest(blockHashes([...prompt], this.options.blockSize, this.options.modelIdentity));
        let best: {entry: SpillEntry; common: number} | undefined;
        for (const entry of match.keys) {
            const common = Math.min(commonPrefixLength(entry.tokens, prompt), prompt.length - 1);
            const better = best == null || common > best.common ||
                (common === best.common && session != null && entry.session === session);
            if (better) best = {entry, common};
        }
        return best;
    }

    private async spillIfWorthIt(sequence: BackendSequence, tokens: readonly number[]) {
        const spill = this.options.spill;
        const saved = this.savedAs.get(sequence.index);
        const alreadyOnDisk = saved != null && saved.tokens.length === tokens.length &&
            commonPrefixLength(saved.tokens, tokens) === tokens.length && spill?.list().includes(saved);
        if (spill == null || alreadyOnDisk)
            return;
        const started = performance.now();
        try {
            const entry = await spill.save(tokens, (file) => sequence.saveState(file), this.owners.get(sequence.index));
            this.counters.spills++;
            this.savedAs.set(sequence.index, entry);
            this.reindex();
            this.options.onEvent?.("spill", {sequence: sequence.index, tokens: tokens.length, bytes: entry.bytes, ms: elapsed(started)});
        } catch (error) {
            this.options.onEvent?.("spill-failed", {sequence: sequence.index, error: (error as Error).message});
        }
    }

    private async restore(sequence: BackendSequence, entry: SpillEntry): Promise<boolean> {
        const spill = this.options.spill!;
        const started = performance.now();
        const unpin = spill.pin(entry);
        try {
            return await this.load(sequence, entry, started);
        } finally {
            await unpin();
        }
    }

    private async load(sequence: BackendSequence, entry: SpillEntry, started: number): Promise<boolean> {
        const spill = this.options.spill!;
        // Whatever goes wrong reading the cache, the request goes on without it (a cold prefill).
        const rejection = await spill.check(entry).catch(() => "missing" as const);
        if (rejection != null) {
            this.counters.rejectedStates++;
            await spill.delete(entry);
            this.reindex();
            this.options.onEvent?.("restore-rejected", {entry: entry.id, reason: rejection});
            return false;
        }
        try {
            await sequence.loadState(spill.statePath(entry));
        } catch (error) {
            this.counters.rejectedStates++;
            await spill.delete(entry);
            this.reindex();
            this.options.onEvent?.("restore-failed", {entry: entry.id, error: (error as Error).message});
            return false;
        }
        spill.touch(entry);
        this.savedAs.set(sequence.index, entry);
        this.counters.restores++;
        this.options.onEvent?.("restore", {sequence: sequence.index, tokens: entry.tokens.length, ms: elapsed(started)});
        return true;
    }

    /** Spill saves may have dropped subsumed entries or evicted old ones: rebuild the index. */
    private reindex() {
        const entries = new Set(this.options.spill?.list());
        for (const entry of entries)
            if (!this.indexed.has(entry)) this.indexEntry(entry);
        for (const entry of this.indexed)
            if (!entries.has(entry)) {
                this.spillIndex.delete(entry);
                this.indexed.delete(entry);
            }
    }

    private indexEntry(entry: SpillEntry) {
        this.indexed.add(entry);
        this.spillIndex.set(entry, blockHashes(entry.tokens, this.options.blockSize, this.options.modelIdentity));
    }
}

/** Lexicographic comparison of two rank tuples. */
function isGreater(a: readonly number[], b: readonly number[]) {
    for (let index = 0; index < a.length; index++)
        if (a[index] !== b[index]) return a[index]! > b[index]!;
    return false;
}

function atLeastABlock(tokens: number, blockSize: number) {
    return tokens >= blockSize ? tokens : 0;
}

function elapsed(since: number) {
    return Math.round((performance.now() - since) * 100) / 100;
}
