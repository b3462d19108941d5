import {spawn, type ChildProcessWithoutNullStreams} from "node:child_process";
import path from "node:path";
import {repoRoot} from "./model.js";

/**
 * This process's environment without edge-llm's own settings (and any others whose names start
 * with `drop`) or the libuv pool size, never starting a background native build, plus `extra`:
 * what a spawned CLI runs with, so a developer's settings cannot change a test.
 */
export function isolatedEnv(extra: Record<string, string> = {}, drop: string[] = ["EDGE_LLM_"]): Record<string, string> {
    const kept = Object.entries(process.env).filter((entry): entry is [string, string] =>
        entry[1] != null && entry[0] !== "UV_THREADPOOL_SIZE" && !drop.some((prefix) => entry[0].startsWith(prefix)));
    return {...Object.fromEntries(kept), EDGE_LLM_NATIVE_BUILD: "off", ...extra};
}

/** Runs `node --import tsx ...args` in the repository to its end, with `input` (then EOF) on stdin when given. */
export function runToEnd(args: string[], env: Record<string, string> = isolatedEnv(), input?: string) {
    const child = spawn(process.execPath, ["--import", "tsx", ...args], {cwd: repoRoot, env});
    if (input != null) child.stdin.end(input);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => { stdout += text; });
    child.stderr.setEncoding("utf8").on("data", (text: string) => { stderr += text; });
    return new Promise<{code: number | null; stdout: string; stderr: string}>((resolve) => child.on("close", (code) => resolve({code, stdout, stderr})));
}

/** `edge-llm serve` as users run it, in its own process (`isolatedEnv(env)`); resolves once it logs "ready". */
export async function startServe(args: string[], env: Record<string, string> = {}) {
    const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/main.ts"), "serve", ...args], {
        cwd: repoRoot,
        env: isolatedEnv(env)
    });
    let stderr = "";
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready:\n${stderr}`)), 30_000);
        child.stderr.setEncoding("utf8").on("data", (text: string) => {
            stderr += text;
            const ready = /"url":"(http:[^"]+)".*"msg":"ready: /.exec(stderr);
            if (ready != null) {
                clearTimeout(timer);
                resolve(ready[1]!);
            }
        });
    });
    return {child, url, exited, stderr: () => stderr};
}
