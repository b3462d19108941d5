import {mkdir, readFile, rename, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type {LlamaContext, LlamaContextSequence, LlamaModel, Token} from "node-llama-cpp";
import {NO_CONTENTION, type NativeDecodeLoop} from "./native-loop/decode-loop.js";
import {CPU_BATCH_SIZE} from "./batch-size.js";

/**
 * Decode autotuning: the fastest thread count depends on the model (a 260K model is fastest on
 * 1 thread, a 1B one on every core), the CPU and the llama.cpp binary, and so does flash
 * attention on the CPU (1B-shaped Q4_0 at 2 threads: one-stream decode the same, prefill 5–15% and
 * batched streams ~12% faster with it; stories260K, whose heads hold 8 values, is faster with it
 * near the start of a context and much slower a few hundred tokens in). So at the first load of a
 * model on a machine each candidate thread count decodes a few tokens, then flash attention off
 * and on prefill a few hundred tokens and decode after them at the chosen count (`tuneDecode`).
 * The result is cached per model and machine, so later loads cost nothing.
 */
export interface ThreadMeasurement {
    threads: number;
    tokensPerSecond: number;
}

export interface FlashAttentionMeasurement {
    flashAttention: boolean;
    /** Decode, `depth` tokens into a context. */
    tokensPerSecond: number;
    /** Prefill of those `depth` tokens. */
    prefillTokensPerSecond: number;
}

export interface TunedThreads {
    threads: number;
    flashAttention: boolean;
    /** Per thread count, near the start of a context, flash attention as `flashAttention` unless it was tuned. */
    measurements: ThreadMeasurement[];
    /** When flash attention was tuned: at `threads`, `flashAttentionDepth` tokens into a context. */
    flashAttentionMeasurements?: FlashAttentionMeasurement[];
    flashAttentionDepth?: number;
    measuredAt: string;
}

/** 1, 2, 4, … up to `mathCores`, and `mathCores` itself: few enough to keep the first load short. */
export function threadCandidates(mathCores: number): number[] {
    const cores = Math.max(1, mathCores);
    const candidates = new Set<number>();
    for (let threads = 1; threads < cores; threads *= 2) candidates.add(threads);
    candidates.add(cores);
    return [...candidates];
}

/** How much faster the less preferred choice must be to win (more threads; flash attention off). */
const CLEARLY_FASTER = 1.05;

/** Tokens already in context when flash attention is measured: attention's share of a token grows with it. */
export const FLASH_ATTENTION_DEPTH = 192;

/**
 * CPU time the process spends per streamed token outside the decode (the JavaScript thread:
 * the generation loop, detokenizing, SSE/WS writes; plus its GC threads): 37–60 µs per token
 * through the server on this 2-core machine (per-thread CPU times from /proc, stories260K).
 */
export const STREAMING_CPU_PER_TOKEN_MS = 0.05;

/**
 * Picks the fastest count, preferring fewer threads (they leave cores and power to the rest of
 * the device) unless more are clearly (5%) faster. A count that takes every core (`cores`) is
 * charged the streaming work per token (`STREAMING_CPU_PER_TOKEN_MS`), which then has no core
 * of its own: invisible next to a 1B model's 20 ms token, but on stories260K (~0.19 ms a token
 * at 2 threads) it is why 2 threads measured 16% faster alone and streamed 34% slower
 * (3,204 vs 4,833 tok/s over SSE, native build).
 */
export function pickThreads(measurements: readonly ThreadMeasurement[], cores = Number.POSITIVE_INFINITY): number {
    const effective = ({threads, tokensPerSecond}: ThreadMeasurement) =>
        threads < cores || tokensPerSecond <= 0 ? tokensPerSecond : 1000 / (1000 / tokensPerSecond + STREAMING_CPU_PER_TOKEN_MS);
    const sorted = [...measurements].sort((a, b) => a.threads - b.threads);
    let best = sorted[0]!;
    for (const entry of sorted.slice(1))
        if (effective(entry) > effective(best) * CLEARLY_FASTER) best = entry;
    return best.threads;
}

/**
 * Flash attention unless a typical request — a prompt and an answer of `depth` tokens each — is
 * clearly (5%) faster without it. On is llama.cpp's own default where supported, and one stream
 * understates it: on the 1B-shaped model here single-stream decode is the same either way,
 * prefill 5–15% faster with it and four batched streams ~12% faster (50 vs 57 ms a step); with
 * heads of 8 values (stories260K) decode is 40% slower with it, far past the margin.
 */
export function pickFlashAttention(measurements: readonly FlashAttentionMeasurement[]): boolean {
    const requestTime = (flashAttention: boolean) => {
        const entry = measurements.find((measurement) => measurement.flashAttention === flashAttention);
        return entry == null || entry.tokensPerSecond <= 0 || entry.prefillTokensPerSecond <= 0 ? Infinity : 1 / entry.prefillTokensPerSecond + 1 / entry.tokensPerSecond;
    };
    return !(requestTime(false) * CLEARLY_FASTER < requestTime(true));
}

/** Attaches the native decode loop to a context; measuring through it measures the loop that will decode. */
export type AttachNativeLoop = (context: LlamaContext) => NativeDecodeLoop | undefined;

export interface MeasureOptions {
    /** Tokens decoded per candidate and round; the first decoded token of each round is not timed. Default 12. */
    tokens?: number;
    nativeLoop?: AttachNativeLoop;
    /** Rounds over all candidates, interleaved so a burst of other load hits every candidate alike. Default 2. */
    rounds?: number;
    signal?: AbortSignal;
}

/** Greedy decode speed of `model` at each candidate thread count (best of the rounds). */
export async function measureThreadCounts(
    model: LlamaModel, {candidates, flashAttention = false, tokens = 12, rounds = 2, signal, nativeLoop}: MeasureOptions & {candidates: readonly number[]; flashAttention?: boolean}
): Promise<ThreadMeasurement[]> {
    const best = new Map<number, number>();
    const prompt = model.tokenize("Once upon a time, there was");
    for (let round = 0; round < rounds; round++) {
        for (const threads of candidates) {
            signal?.throwIfAborted();
            const context = await model.createContext({contextSize: 256, sequences: 1, batchSize: CPU_BATCH_SIZE, threads: {ideal: threads, min: threads}, flashAttention});
            try {
                best.set(threads, Math.max(best.get(threads) ?? 0, await decodeRate(context.getSequence(), prompt, tokens, nativeLoop?.(context))));
            } finally {
                await context.dispose();
            }
        }
    }
    return candidates.map((threads) => ({threads, tokensPerSecond: Math.round(best.get(threads) ?? 0)}));
}

/**
 * Greedy decode speed with flash attention off and on at `threads`, `depth` tokens into a
 * context (attention's share of a token grows with the context). Each setting's context is
 * filled once; every round decodes from the same point.
 */
export async function measureFlashAttention(
    model: LlamaModel, {threads, depth = FLASH_ATTENTION_DEPTH, tokens = 12, rounds = 2, signal, nativeLoop}: MeasureOptions & {threads: number; depth?: number}
): Promise<FlashAttentionMeasurement[]> {
    const text = "Once upon a time, there was a little girl who lived in a village near the forest. ";
    let prompt = model.tokenize(text);
    while (prompt.length < depth) prompt = [...prompt, ...model.tokenize(text)];
    prompt = prompt.slice(0, depth);
    const contexts = [];
    try {
        for (const flashAttention of [false, true]) {
            signal?.throwIfAborted();
            const context = await model.createContext({contextSize: depth + tokens + 16, sequences: 1, batchSize: CPU_BATCH_SIZE, threads: {ideal: threads, min: threads}, flashAttention});
            contexts.push({flashAttention, context, sequence: context.getSequence(), loop: nativeLoop?.(context), best: 0, prefill: 0});
        }
        for (const entry of contexts) {
            const started = performance.now();
            await entry.sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1) as Token[]);
            entry.prefill = (depth - 1) / ((performance.now() - started) / 1000);
        }
        for (let round = 0; round < rounds; round++) {
            for (const entry of contexts) {
                signal?.throwIfAborted();
                entry.best = Math.max(entry.best, await decodeRate(entry.sequence, prompt.slice(-1), tokens, entry.loop));
                await entry.sequence.eraseContextTokenRanges([{start: depth - 1, end: entry.sequence.nextTokenIndex}]);
            }
        }
        return contexts.map(({flashAttention, best, prefill}) => ({flashAttention, tokensPerSecond: Math.round(best), prefillTokensPerSecond: Math.round(prefill)}));
    } finally {
        for (const {context} of contexts) await context.dispose();
    }
}

/**
 * The decode settings for `model` here: the thread count among `candidates`, then flash
 * attention at that count when both settings are allowed (`flashAttention` [false, true]),
 * else the one given.
 */
export async function tuneDecode(model: LlamaModel, {candidates, flashAttention, signal, nativeLoop}: {candidates: readonly number[]; flashAttention: readonly boolean[]; signal?: AbortSignal; nativeLoop?: AttachNativeLoop}): Promise<TunedThreads> {
    const tuneFlash = flashAttention.length > 1;
    const measurements = await measureThreadCounts(model, {candidates, flashAttention: tuneFlash ? false : flashAttention[0], signal, nativeLoop});
    // The largest candidate is every core (threadCandidates).
    const threads = pickThreads(measurements, Math.max(...candidates));
    const measuredAt = new Date().toISOString();
    if (!tuneFlash) return {threads, flashAttention: flashAttention[0] === true, measurements, measuredAt};
    const flashAttentionMeasurements = await measureFlashAttention(model, {threads, signal, nativeLoop});
    return {
        threads, flashAttention: pickFlashAttention(flashAttentionMeasurements), measurements, measuredAt,
        flashAttentionMeasurements, flashAttentionDepth: FLASH_ATTENTION_DEPTH
    };
}

/**
 * Tokens/s of `tokens` greedy tokens after `prompt`, the first (which includes the prompt) not
 * timed; through the native decode loop when given, as a lone stream decodes. The native loop
 * hands tokens over in groups, so there the whole run is timed (its input is one token, decoded
 * like every other).
 */
export async function decodeRate(sequence: LlamaContextSequence, prompt: readonly Token[], tokens: number, loop?: NativeDecodeLoop): Promise<number> {
    if (loop != null) {
        if (prompt.length > 1) await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1) as Token[]);
        const started = performance.now();
        let decoded = 0;
        for await (const token of loop.generate(sequence, [prompt.at(-1)!], {
            sampling: {temperature: 0, seed: 0}, maxTokens: tokens, contention: NO_CONTENTION,
            truncate: (length) => sequence.eraseContextTokenRanges([{start: length, end: sequence.nextTokenIndex}])
        })) {
            void token;
            if (++decoded >= tokens) break;
        }
        const seconds = (performance.now() - started) / 1000;
        return decoded > 0 && seconds > 0 ? decoded / seconds : 0;
    }
    let decoded = 0;
    let started = 0;
    for await (const token of sequence.evaluate(prompt as Token[], {temperature: 0})) {
        void token;
        if (decoded === 0) started = performance.now();
        if (++decoded > tokens) break;
    }
    const seconds = (performance.now() - started) / 1000;
    return decoded > 1 && seconds > 0 ? (decoded - 1) / seconds : 0;
}

/** What the tuned count depends on besides the model: this CPU and the llama.cpp binary. */
export function machineKey(binary: string): string {
    const cpu = os.cpus()[0]?.model ?? "unknown cpu";
    return `${os.platform()}-${os.arch()}|${cpu}|${os.cpus().length} cpus|${binary}`;
}

/** A JSON file of tuned counts keyed by model fingerprint and machine. */
export class ThreadTuningCache {
    constructor(readonly file: string) {}

    async get(key: string): Promise<TunedThreads | undefined> {
        return (await this.read())[key];
    }

    async set(key: string, value: TunedThreads): Promise<void> {
        const entries = await this.read();
        entries[key] = value;
        await mkdir(path.dirname(this.file), {recursive: true});
        const partial = `${this.file}.${process.pid}.partial`;
        await writeFile(partial, JSON.stringify(entries, null, 2));
        await rename(partial, this.file);
    }

    private async read(): Promise<Record<string, TunedThreads>> {
        try {
            const parsed: unknown = JSON.parse(await readFile(this.file, "utf8"));
            return parsed != null && typeof parsed === "object" ? parsed as Record<string, TunedThreads> : {};
        } catch {
            // Missing or unreadable: tune again and rewrite it.
            return {};
        }
    }
}

/** E.g. "autotuned: 1: 30 tok/s, 2: 44 tok/s; flash attention at 2 threads, 192 tokens in: off 47 tok/s (prefill 120), on 47 tok/s (prefill 136): on". */
export function describeTuning(tuned: TunedThreads, cached: boolean): string {
    const rates = tuned.measurements.map((entry) => `${entry.threads}: ${entry.tokensPerSecond} tok/s`).join(", ");
    const flash = tuned.flashAttentionMeasurements;
    const flashText = flash == null ? "" : `; flash attention at ${tuned.threads} thread${tuned.threads === 1 ? "" : "s"}, ${tuned.flashAttentionDepth} tokens in: ` +
        `${flash.map((entry) => `${entry.flashAttention ? "on" : "off"} ${entry.tokensPerSecond} tok/s (prefill ${entry.prefillTokensPerSecond})`).join(", ")}: ${tuned.flashAttention ? "on" : "off"}`;
    return `autotuned${cached ? " (cached)" : ""}: ${rates}${flashText}`;
}
