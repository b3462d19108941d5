import {mkdir, readFile, rename, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type {LlamaModel, Token} from "node-llama-cpp";

/**
 * Decode autotuning: the fastest thread count depends on the model (a 260K model is fastest on
 * 1 thread, a 1B one on every core), the CPU and the llama.cpp binary, and so does flash
 * attention on the CPU (1B-shaped Q4_0 at 2 threads: ~8% faster decode and ~15% faster prefill
 * with it; stories260K, whose heads hold 8 values: ~40% slower). So at the first load of a model
 * on a machine each candidate decodes a few tokens and the fastest wins. The result is cached per
 * model and machine, so later loads cost nothing.
 */
export interface ThreadMeasurement {
    threads: number;
    /** Absent in measurements where flash attention was not a candidate (it was off). */
    flashAttention?: boolean;
    tokensPerSecond: number;
}

export interface DecodeSettings {
    threads: number;
    flashAttention: boolean;
}

export interface TunedThreads extends DecodeSettings {
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
 * Picks the fastest settings, preferring fewer threads and flash attention off unless the other
 * is clearly (5%) faster: fewer threads leave cores for the rest of the device and spend less
 * power at the same speed, and llama.cpp's plain attention is the path most models were checked on.
 */
export function pickThreads(measurements: readonly ThreadMeasurement[]): DecodeSettings {
    const sorted = [...measurements].sort((a, b) => a.threads - b.threads || Number(a.flashAttention === true) - Number(b.flashAttention === true));
    let best = sorted[0]!;
    for (const entry of sorted.slice(1))
        if (entry.tokensPerSecond > best.tokensPerSecond * 1.05) best = entry;
    return {threads: best.threads, flashAttention: best.flashAttention === true};
}

export interface MeasureOptions {
    candidates: readonly number[];
    /** Flash attention settings to try at each count. Default: off only. */
    flashAttention?: readonly boolean[];
    /** Tokens decoded per candidate and round; the first decoded token of each round is not timed. Default 12. */
    tokens?: number;
    /** Rounds over all candidates, interleaved so a burst of other load hits every candidate alike. Default 2. */
    rounds?: number;
    signal?: AbortSignal;
}

/** Greedy decode speed of `model` at each candidate thread count and flash attention setting (best of the rounds). */
export async function measureThreadCounts(model: LlamaModel, {candidates, flashAttention = [false], tokens = 12, rounds = 2, signal}: MeasureOptions): Promise<ThreadMeasurement[]> {
    const settings = candidates.flatMap((threads) => flashAttention.map((flash) => ({threads, flashAttention: flash})));
    const best = new Map<string, number>();
    const keyOf = ({threads, flashAttention: flash}: DecodeSettings) => `${threads}/${flash}`;
    const prompt = model.tokenize("Once upon a time, there was");
    for (let round = 0; round < rounds; round++) {
        for (const setting of settings) {
            signal?.throwIfAborted();
            const {threads} = setting;
            const context = await model.createContext({contextSize: 256, sequences: 1, threads: {ideal: threads, min: threads}, flashAttention: setting.flashAttention});
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
                best.set(keyOf(setting), Math.max(best.get(keyOf(setting)) ?? 0, rate));
            } finally {
                await context.dispose();
            }
        }
    }
    return settings.map((setting) => ({
        threads: setting.threads,
        ...(flashAttention.length > 1 || flashAttention[0] === true ? {flashAttention: setting.flashAttention} : {}),
        tokensPerSecond: Math.round(best.get(keyOf(setting)) ?? 0)
    }));
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

/** E.g. "autotuned: 1: 30 tok/s, 2: 44 tok/s (with flash attention: 48 tok/s); flash attention on". */
export function describeTuning(tuned: TunedThreads, cached: boolean): string {
    const counts = [...new Set(tuned.measurements.map((entry) => entry.threads))];
    const rate = (threads: number, flash: boolean) => tuned.measurements.find((entry) => entry.threads === threads && (entry.flashAttention === true) === flash)?.tokensPerSecond;
    const rates = counts.map((threads) => {
        const plain = rate(threads, false);
        const flash = rate(threads, true);
        if (plain == null) return `${threads}: ${flash} tok/s with flash attention`;
        return `${threads}: ${plain} tok/s${flash == null ? "" : ` (with flash attention: ${flash} tok/s)`}`;
    }).join(", ");
    const flashTried = tuned.measurements.some((entry) => entry.flashAttention === true);
    return `autotuned${cached ? " (cached)" : ""}: ${rates}${flashTried ? `; flash attention ${tuned.flashAttention ? "on" : "off"}` : ""}`;
}
