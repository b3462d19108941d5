import {mkdir, readFile, rename, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type {LlamaModel, Token} from "node-llama-cpp";

/**
 * Thread autotuning: the fastest decode thread count depends on the model (a 260K model is
 * fastest on 1 thread, a 1B one on every core), the CPU and the llama.cpp binary, so at the first
 * load of a model on a machine each candidate count decodes a few tokens and the fastest wins.
 * The result is cached per model and machine, so later loads cost nothing.
 */
export interface ThreadMeasurement {
    threads: number;
    tokensPerSecond: number;
}

export interface TunedThreads {
    threads: number;
    measurements: ThreadMeasurement[];
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

/**
 * Picks the fastest count, preferring fewer threads unless more are clearly (5%) faster: fewer
 * threads leave cores for the rest of the device and spend less power at the same speed.
 */
export function pickThreads(measurements: readonly ThreadMeasurement[]): number {
    const sorted = [...measurements].sort((a, b) => a.threads - b.threads);
    let best = sorted[0]!;
    for (const entry of sorted.slice(1))
        if (entry.tokensPerSecond > best.tokensPerSecond * 1.05) best = entry;
    return best.threads;
}

export interface MeasureOptions {
    candidates: readonly number[];
    /** Tokens decoded per candidate and round; the first decoded token of each round is not timed. Default 12. */
    tokens?: number;
    /** Rounds over all candidates, interleaved so a burst of other load hits every candidate alike. Default 2. */
    rounds?: number;
    signal?: AbortSignal;
}

/** Greedy decode speed of `model` at each candidate thread count (best of the rounds). */
export async function measureThreadCounts(model: LlamaModel, {candidates, tokens = 12, rounds = 2, signal}: MeasureOptions): Promise<ThreadMeasurement[]> {
    const best = new Map<number, number>();
    const prompt = model.tokenize("Once upon a time, there was");
    for (let round = 0; round < rounds; round++) {
        for (const threads of candidates) {
            signal?.throwIfAborted();
            const context = await model.createContext({contextSize: 256, sequences: 1, threads: {ideal: threads, min: threads}, flashAttention: false});
            try {
                const sequence = context.getSequence();
                let decoded = 0;
                let started = 0;
                for await (const token of sequence.evaluate(prompt as Token[], {temperature: 0})) {
                    void token;
                    if (decoded === 0) started = performance.now();
                    if (++decoded > tokens) break;
                }
                const seconds = (performance.now() - started) / 1000;
                const rate = decoded > 1 && seconds > 0 ? (decoded - 1) / seconds : 0;
                best.set(threads, Math.max(best.get(threads) ?? 0, rate));
            } finally {
                await context.dispose();
            }
        }
    }
    return candidates.map((threads) => ({threads, tokensPerSecond: Math.round(best.get(threads) ?? 0)}));
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

export function describeTuning(tuned: TunedThreads, cached: boolean): string {
    const rates = tuned.measurements.map((entry) => `${entry.threads}: ${entry.tokensPerSecond} tok/s`).join(", ");
    return `autotuned${cached ? " (cached)" : ""}: ${rates}`;
}
