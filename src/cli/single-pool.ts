import {spawn} from "node:child_process";
import os from "node:os";
import type {NativeBuildRecord} from "../backends/llama-cpp/native-build.js";
import type {Settings} from "../config/schema.js";

/**
 * Why `serve` relaunches itself with `UV_THREADPOOL_SIZE=1` (docs/performance.md):
 * node-llama-cpp runs each decode on a libuv pool thread, a different one from call to call.
 * Under OpenMP every such thread becomes the master of its own thread team, so after a few
 * tokens libgomp manages more threads than there are CPUs and throttles its spin-wait to ~100
 * spins: every barrier inside a decode (hundreds per token) then sleeps on a futex, and the wait
 * policy stops mattering. On the 1B-shaped model at 2 threads that costs ~30% of decode speed
 * (30 vs 44 tok/s). One pool thread means one master and one team.
 *
 * libuv reads UV_THREADPOOL_SIZE once, when Node starts, so it cannot be set from inside.
 * The price of one pool thread is that file I/O and model loads queue behind decodes; with more
 * than one model loaded at once a load would stall the other model's streams, so then it is not done.
 */
export function singlePoolReason(settings: Settings, record: NativeBuildRecord | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
    if (env.UV_THREADPOOL_SIZE != null || env.EDGE_LLM_RELAUNCHED != null) return undefined;
    if (settings.backend !== "llama.cpp" || record == null || record.cmakeOptions.GGML_OPENMP !== "ON" || record.gpu !== false) return undefined;
    if (settings.maxLoadedModels !== 1 || os.availableParallelism() < 2 || settings.threads === 1) return undefined;
    return `the local OpenMP build "${record.preset}" decodes with one thread team only from one libuv thread`;
}

/**
 * Runs this same command again in a child process with `env` added, forwarding signals, and
 * resolves with its exit code. stdin/stdout/stderr are shared.
 */
export function relaunch(env: Record<string, string>): Promise<number> {
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
        stdio: "inherit",
        // Its own process group: a terminal's Ctrl-C reaches the parent only, which forwards it once.
        detached: true,
        env: {...process.env, ...env, EDGE_LLM_RELAUNCHED: "1"}
    });
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
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
