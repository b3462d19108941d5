import {spawn} from "node:child_process";
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";
import type {BinaryScore, BuildComparison, NativeBuildRecord} from "./native-build.js";
import type {TunedThreads} from "./thread-tuning.js";

/**
 * Whether the local CPU build pays on this machine: the build decodes ~40% faster than the
 * prebuilt binary on an AVX-512 host and no faster on an AVX2 one (docs/performance.md, run 14),
 * so it is measured, not assumed. Each binary loads the model in its own process, as `serve`
 * would (one libuv pool thread, the OpenMP wait policy, autotuned threads and flash attention,
 * the native decode loop), and times prefill and decode at the settings it tuned
 * (scripts/measure-binary.ts). Rounds alternate which binary goes first; the verdict is the
 * median of the per-round ratios.
 */

/** How much faster the local build must be to be loaded instead of the prebuilt binary (as for thread counts). */
export const PAYS_AT = 1.05;

/** Milliseconds per prompt token plus per answer token: a request with as long an answer as its prompt. */
export function requestMs(score: BinaryScore): number {
    const decode = score.decodeTokensPerSecond > 0 ? 1000 / score.decodeTokensPerSecond : Infinity;
    const prefill = score.prefillTokensPerSecond == null ? 0 : score.prefillTokensPerSecond > 0 ? 1000 / score.prefillTokensPerSecond : Infinity;
    return decode + prefill;
}

export function median(values: readonly number[]): number {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** The verdict on paired measurements: ratio > 1 when the local build is faster. */
export function judgeComparison(rounds: BuildComparison["rounds"]): {ratio: number; pays: boolean} {
    if (rounds.length === 0) throw new Error("no rounds to judge");
    const ratio = median(rounds.map(({prebuilt, local}) => requestMs(prebuilt) / requestMs(local)));
    return {ratio: Math.round(ratio * 1000) / 1000, pays: ratio >= PAYS_AT};
}

/** E.g. "m.gguf, 5 rounds: local 2,680 tok/s decode against prebuilt 2,618, 1.067× the prebuilt binary's speed per request" (medians). */
export function describeComparison(comparison: BuildComparison): string {
    const rate = (pick: (round: BuildComparison["rounds"][number]) => BinaryScore) =>
        Math.round(median(comparison.rounds.map((round) => pick(round).decodeTokensPerSecond))).toLocaleString("en-US");
    return `${comparison.model}, ${comparison.rounds.length} round${comparison.rounds.length === 1 ? "" : "s"}: ` +
        `local ${rate((round) => round.local)} tok/s decode against prebuilt ${rate((round) => round.prebuilt)}, ` +
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
    /** What autotuning measured and chose (cached across rounds). */
    tuned: TunedThreads;
    /** Requests timed at the tuned settings. */
    score: BinaryScore;
}

const CHILD_SCRIPT = fileURLToPath(new URL("../../../scripts/measure-binary.ts", import.meta.url));

/**
 * Loads `model` with the prebuilt binary, or the local build of `record`, in a child process
 * set up as `serve` runs (one libuv pool thread), autotuned into `tuningFile` (a fresh temporary
 * one when not given), and returns what it measured.
 */
export async function measureBinary(options: {model: string; record?: NativeBuildRecord; tuningFile?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv}): Promise<MeasuredBinary> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-measure-"));
    try {
        const args = ["--import", "tsx", CHILD_SCRIPT, "--model", options.model, "--tuning", options.tuningFile ?? path.join(dir, "tuning.json"),
            ...(options.record == null ? [] : ["--record", JSON.stringify(options.record)])];
        const {code, stdout, stderr} = await new Promise<{code: number; stdout: string; stderr: string}>((resolve, reject) => {
            const child = spawn(process.execPath, args, {
                cwd: path.resolve(path.dirname(CHILD_SCRIPT), ".."),
                env: {...(options.env ?? process.env), UV_THREADPOOL_SIZE: "1"},
                stdio: ["ignore", "pipe", "pipe"],
                timeout: options.timeoutMs ?? 600_000
            });
            let out = "";
            let err = "";
            child.stdout.on("data", (chunk: Buffer) => out += chunk.toString());
            child.stderr.on("data", (chunk: Buffer) => err += chunk.toString());
            child.once("error", reject);
            child.once("close", (exitCode, signal) => resolve({code: exitCode ?? (signal == null ? 1 : 128), stdout: out, stderr: err}));
        });
        const line = stdout.trim().split("\n").at(-1) ?? "";
        if (code !== 0 || !line.startsWith("{")) {
            const why = stderr.trim().split("\n").filter((text) => text.trim() !== "").at(-1) ?? `exit code ${code}`;
            throw new Error(`measuring the ${options.record == null ? "prebuilt binary" : "local build"} failed: ${why}`);
        }
        return JSON.parse(line) as MeasuredBinary;
    } finally {
        await rm(dir, {recursive: true, force: true});
    }
}

/** Measures both binaries on `model`, alternating which goes first, and judges. */
export async function compareBuilds(options: {model: string; record: NativeBuildRecord; rounds?: number; log?: (message: string) => void; env?: NodeJS.ProcessEnv}): Promise<BuildComparison> {
    const rounds: BuildComparison["rounds"] = [];
    const total = options.rounds ?? 5;
    // Each binary tunes once, in its first round, and keeps those settings: later rounds time the same thing.
    const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-compare-"));
    try {
        for (let round = 0; round < total; round++) {
            const scores: Partial<Record<"prebuilt" | "local", BinaryScore>> = {};
            for (const binary of round % 2 === 0 ? ["prebuilt", "local"] as const : ["local", "prebuilt"] as const) {
                const measured = await measureBinary({
                    model: options.model, record: binary === "local" ? options.record : undefined, tuningFile: path.join(dir, `${binary}.json`), env: options.env
                });
                const expected = binary === "local" ? "localBuild" : "prebuilt";
                if (measured.build.type !== expected) throw new Error(`the ${binary} binary did not load: ${measured.build.reason}`);
                scores[binary] = measured.score;
            }
            rounds.push({prebuilt: scores.prebuilt!, local: scores.local!});
            options.log?.(`round ${round + 1}/${total}: prebuilt ${formatScore(scores.prebuilt!)}; local ${formatScore(scores.local!)}`);
        }
    } finally {
        await rm(dir, {recursive: true, force: true});
    }
    return {model: path.basename(options.model), measuredAt: new Date().toISOString(), rounds, ...judgeComparison(rounds)};
}

function formatScore(score: BinaryScore) {
    return `${score.decodeTokensPerSecond} tok/s decode${score.prefillTokensPerSecond == null ? "" : `, ${score.prefillTokensPerSecond} prefill`} ` +
        `(${score.threads} thread${score.threads === 1 ? "" : "s"}, flash attention ${score.flashAttention ? "on" : "off"})`;
}
