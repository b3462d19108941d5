import {spawn} from "node:child_process";
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {createInterface} from "node:readline";
import {fileURLToPath} from "node:url";
import type {BinaryScore, BuildComparison, NativeBuildRecord} from "./native-build.js";
import type {TunedThreads} from "./thread-tuning.js";

/**
 * Whether the local CPU build pays on this machine: the build decoded ~40% faster than the
 * prebuilt binary on an AVX-512 host and no faster on an AVX2 one (docs/performance.md, run 14),
 * so it is measured, not assumed. Each binary loads the model in its own process, as `serve`
 * would (one libuv pool thread, the OpenMP wait policy, autotuned threads and flash attention,
 * the native decode loop; scripts/measure-binary.ts), and both stay loaded while requests are
 * timed on one and then the other, alternately: this VM's speed swings by ~1.8× in phases of tens
 * of seconds, which separate processes timed one after the other read as a difference between
 * binaries. The verdict is the median of the per-pair ratios.
 */

/** How much faster the local build must be to be loaded instead of the prebuilt binary (as for thread counts). */
export const PAYS_AT = 1.05;

/** One timed request: a 64-token prompt's prefill and a 64-token answer. */
export interface RequestTiming {
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
}

/** Milliseconds per prompt token plus per answer token: a request with as long an answer as its prompt. */
export function requestMs(timing: RequestTiming): number {
    const per = (tokensPerSecond: number) => tokensPerSecond > 0 ? 1000 / tokensPerSecond : Infinity;
    return per(timing.decodeTokensPerSecond) + per(timing.prefillTokensPerSecond);
}

export function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The verdict on paired requests: ratio > 1 when the local build is faster. */
export function judgeComparison(pairs: readonly {prebuilt: RequestTiming; local: RequestTiming}[]): {ratio: number; pays: boolean} {
    if (pairs.length === 0) throw new Error("no requests to judge");
    const ratio = median(pairs.map(({prebuilt, local}) => requestMs(prebuilt) / requestMs(local)));
    return {ratio: Math.round(ratio * 1000) / 1000, pays: ratio >= PAYS_AT};
}

/** E.g. "m.gguf, 40 requests each: local 2,680 tok/s decode, 9,000 prefill against prebuilt 2,618 tok/s decode, 7,000 prefill: 1.067× the prebuilt binary's speed per request" (medians). */
export function describeComparison(comparison: BuildComparison): string {
    const rates = (score: BinaryScore) =>
        `${Math.round(score.decodeTokensPerSecond).toLocaleString("en-US")} tok/s decode, ${Math.round(score.prefillTokensPerSecond).toLocaleString("en-US")} prefill`;
    return `${comparison.model}, ${comparison.requests} requests each: local ${rates(comparison.local)} against prebuilt ${rates(comparison.prebuilt)}: ` +
        `${comparison.ratio}× the prebuilt binary's speed per request`;
}

export type NativeBuildSetting = "auto" | "on" | "off";

/**
 * The recorded build to load: every record, unless its comparison found it no faster than the
 * prebuilt binary (then `skipped` says why); `nativeBuild: "on"` loads it regardless.
 */
export function chooseRecordedBuild(record: NativeBuildRecord | undefined, setting: NativeBuildSetting): {record?: NativeBuildRecord; skipped?: string} {
    if (record == null) return {};
    const comparison = record.comparison;
    if (setting === "on" || comparison == null || comparison.pays) return {record};
    return {skipped: `the local build "${record.preset}" measured no faster than the prebuilt binary here (${describeComparison(comparison)}; ` +
        `it must be ${PAYS_AT}×), so the prebuilt binary runs; nativeBuild "on" loads it anyway`};
}

export interface MeasuredBinary {
    build: {type: "prebuilt" | "localBuild"; reason: string};
    /** What autotuning measured and chose. */
    tuned: TunedThreads;
}

const CHILD_SCRIPT = fileURLToPath(new URL("../../../scripts/measure-binary.ts", import.meta.url));
/** Loading and autotuning: a 7B model on a slow device takes minutes. */
const READY_TIMEOUT_MS = 15 * 60_000;
const REQUEST_TIMEOUT_MS = 5 * 60_000;

/** A binary loaded in a child process set up as `serve` runs (one libuv pool thread), timing requests on demand. */
export interface BinaryProcess {
    measured: MeasuredBinary;
    time(): Promise<RequestTiming>;
    close(): Promise<void>;
}

/** Starts scripts/measure-binary.ts for the prebuilt binary, or the local build of `record`, and waits until it is loaded and tuned. */
export async function startBinaryProcess(options: {model: string; record?: NativeBuildRecord; tuningFile: string; env?: NodeJS.ProcessEnv}): Promise<BinaryProcess> {
    const name = options.record == null ? "prebuilt binary" : "local build";
    const child = spawn(process.execPath, [
        "--import", "tsx", CHILD_SCRIPT, "--model", options.model, "--tuning", options.tuningFile,
        ...(options.record == null ? [] : ["--record", JSON.stringify(options.record)])
    ], {cwd: path.resolve(path.dirname(CHILD_SCRIPT), ".."), env: {...(options.env ?? process.env), UV_THREADPOOL_SIZE: "1"}, stdio: ["pipe", "pipe", "pipe"]});
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (text: string) => { stderr += text; });
    child.stdin.on("error", () => {});  // a child that died is reported through `exited`
    const lines: string[] = [];
    let waiting: ((line: string | Error) => void) | undefined;
    let exited: Error | undefined;
    createInterface({input: child.stdout}).on("line", (line) => {
        if (!line.startsWith("{")) return;
        if (waiting != null) waiting(line);
        else lines.push(line);
    });
    const closed = new Promise<void>((resolve) => child.once("close", (code, signal) => {
        const why = stderr.trim().split("\n").filter((text) => text.trim() !== "").at(-1) ?? `exit code ${code ?? signal}`;
        exited = new Error(`measuring the ${name} failed: ${why}`);
        waiting?.(exited);
        resolve();
    }));
    const next = <T>(timeoutMs: number) => new Promise<T>((resolve, reject) => {
        if (lines.length > 0) return resolve(JSON.parse(lines.shift()!) as T);
        if (exited != null) return reject(exited);
        const timer = setTimeout(() => {
            waiting = undefined;
            child.kill();
            reject(new Error(`measuring the ${name} timed out after ${timeoutMs / 1000} s`));
        }, timeoutMs);
        waiting = (line) => {
            clearTimeout(timer);
            waiting = undefined;
            if (line instanceof Error) reject(line);
            else resolve(JSON.parse(line) as T);
        };
    });
    const close = async () => {
        child.stdin.end();
        const timer = setTimeout(() => child.kill(), 30_000);
        await closed;
        clearTimeout(timer);
    };
    try {
        const measured = await next<MeasuredBinary>(READY_TIMEOUT_MS);
        return {
            measured,
            time: () => {
                child.stdin.write("time\n");
                return next<RequestTiming>(REQUEST_TIMEOUT_MS);
            },
            close
        };
    } catch (error) {
        await close();
        throw error;
    }
}

/**
 * Loads both binaries (one after the other, so their autotuning does not overlap), then times
 * requests on each alternately, switching which goes first every pair, until `minRequests`
 * pairs and `minMs` have passed (at most `maxRequests`), and judges.
 */
export async function compareBuilds(options: {
    model: string; record: NativeBuildRecord; minRequests?: number; minMs?: number; maxRequests?: number;
    log?: (message: string) => void; env?: NodeJS.ProcessEnv;
}): Promise<BuildComparison> {
    const {minRequests = 10, minMs = 20_000, maxRequests = 200} = options;
    const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-compare-"));
    const started: BinaryProcess[] = [];
    try {
        const binaries = {} as Record<"prebuilt" | "local", BinaryProcess>;
        for (const binary of ["prebuilt", "local"] as const) {
            const running = await startBinaryProcess({model: options.model, record: binary === "local" ? options.record : undefined, tuningFile: path.join(dir, `${binary}.json`), env: options.env});
            started.push(running);
            const expected = binary === "local" ? "localBuild" : "prebuilt";
            if (running.measured.build.type !== expected) throw new Error(`the ${binary} binary did not load: ${running.measured.build.reason}`);
            binaries[binary] = running;
            options.log?.(`${binary}: ${running.measured.tuned.threads} thread${running.measured.tuned.threads === 1 ? "" : "s"}, flash attention ${running.measured.tuned.flashAttention ? "on" : "off"} (autotuned)`);
        }
        const pairs: {prebuilt: RequestTiming; local: RequestTiming}[] = [];
        const begin = performance.now();
        while (pairs.length < maxRequests && (pairs.length < minRequests || performance.now() - begin < minMs)) {
            const pair = {} as {prebuilt: RequestTiming; local: RequestTiming};
            for (const binary of pairs.length % 2 === 0 ? ["prebuilt", "local"] as const : ["local", "prebuilt"] as const)
                pair[binary] = await binaries[binary].time();
            pairs.push(pair);
        }
        const score = (binary: "prebuilt" | "local"): BinaryScore => ({
            threads: binaries[binary].measured.tuned.threads,
            flashAttention: binaries[binary].measured.tuned.flashAttention,
            decodeTokensPerSecond: Math.round(median(pairs.map((pair) => pair[binary].decodeTokensPerSecond))),
            prefillTokensPerSecond: Math.round(median(pairs.map((pair) => pair[binary].prefillTokensPerSecond)))
        });
        return {model: path.basename(options.model), measuredAt: new Date().toISOString(), requests: pairs.length, prebuilt: score("prebuilt"), local: score("local"), ...judgeComparison(pairs)};
    } finally {
        for (const running of started) await running.close();
        await rm(dir, {recursive: true, force: true});
    }
}
