import {spawn} from "node:child_process";
import os from "node:os";
import type {NativeBuildRecord} from "../backends/llama-cpp/native-build.js";
import type {Settings} from "../config/schema.js";

/** Whether node-llama-cpp would pick a GPU here (CUDA, Vulkan or Metal support found; ~10 ms). */
export async function gpuSupported(): Promise<boolean> {
    const {getLlamaGpuTypes} = await import("node-llama-cpp");
    return (await getLlamaGpuTypes("supported")).some((type) => type !== false);
}

/**
 * Why `serve` relaunches itself with `UV_THREADPOOL_SIZE=1` when it decodes on the CPU
 * (docs/performance.md): node-llama-cpp runs each decode and each sampling step as a libuv pool
 * job, on whichever of the pool's threads is free, so consecutive steps hop between threads.
 * - Under OpenMP (a local build) every such thread becomes the master of its own thread team;
 *   after a few tokens libgomp manages more threads than there are CPUs and throttles its
 *   spin-wait to ~100 spins, so every barrier inside a decode (hundreds per token) sleeps on a
 *   futex: 30 vs 44 tok/s on the 1B-shaped model at 2 threads.
 * - With the prebuilt binary (ggml's own thread pool) it costs as much: 1B-shaped model at 2
 *   threads, one stream 37 → 46 tok/s and four 57 → 63 with one pool thread; stories260K at one
 *   thread 1,490 → 1,990 (scripts/bench/native.ts measures both).
 * One pool thread keeps every step on one hot thread.
 *
 * libuv reads UV_THREADPOOL_SIZE once, when Node starts, so it cannot be set from inside.
 * The price of one pool thread is that file I/O and model loads queue behind decodes; with more
 * than one model loaded at once a load would stall the other model's streams, so then it is not
 * done; on a GPU the decode does not run on these threads' CPU time, so neither.
 */
export async function singlePoolReason(
    settings: Settings, record: NativeBuildRecord | undefined, gpuAvailable: () => Promise<boolean>, env: NodeJS.ProcessEnv = process.env
): Promise<string | undefined> {
    if (env.UV_THREADPOOL_SIZE != null || env.EDGE_LLM_RELAUNCHED != null) return undefined;
    if (settings.backend !== "llama.cpp" || settings.maxLoadedModels !== 1 || os.availableParallelism() < 2) return undefined;
    const cpuRecord = record?.gpu === false ? record : undefined;
    if (settings.gpu === "auto" && (record != null ? record.gpu !== false : await gpuAvailable())) return undefined;
    if (cpuRecord?.cmakeOptions.GGML_OPENMP === "ON")
        return `the local OpenMP build "${cpuRecord.preset}" decodes with one thread team only from one libuv thread`;
    return "decoding on the CPU, steps that hop between libuv pool threads run slower";
}

/**
 * Runs this same command again in a child process with `env` added, forwarding signals, and
 * resolves with its exit code. stdin/stdout/stderr are shared.
 *
 * `foreground`: the child reads the terminal (the chat), so it stays in the terminal's process
 * group — a background group reading a TTY is stopped (SIGTTIN) — and a terminal's Ctrl-C reaches
 * it directly; the parent forwards SIGINT only when stdin is no terminal (a signal sent to the
 * parent alone). Otherwise the child gets its own process group and the parent forwards Ctrl-C once.
 */
export function relaunch(env: Record<string, string>, {foreground = false}: {foreground?: boolean} = {}): Promise<number> {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
        stdio: "inherit",
        detached: !foreground,
        env: {...process.env, ...env, EDGE_LLM_RELAUNCHED: "1"}
    });
    const forward = (signal: NodeJS.Signals) => foreground && signal === "SIGINT" && process.stdin.isTTY ? () => {} : () => child.kill(signal);
    const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((signal) => [signal, forward(signal)] as const);
    for (const [signal, handler] of handlers) process.on(signal, handler);
    return new Promise((resolve, reject) => {
        child.once("error", reject);
        child.once("exit", (code, signal) => {
            for (const [name, handler] of handlers) process.off(name, handler);
            resolve(code ?? 128 + (signal == null ? 0 : os.constants.signals[signal]));
        });
    });
}
