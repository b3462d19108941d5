import {spawn, type ChildProcessWithoutNullStreams} from "node:child_process";
import path from "node:path";
import {repoRoot} from "./model.js";

/**
 * `edge-llm serve` as users run it, in its own process, with none of this process's EDGE_LLM_*
 * settings or libuv pool size (and never a background native build) plus `env`; resolves once it logs "ready".
 */
export async function startServe(args: string[], env: Record<string, string> = {}) {
    const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/main.ts"), "serve", ...args], {
        cwd: repoRoot,
        env: {...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("EDGE_LLM_") && key !== "UV_THREADPOOL_SIZE")), EDGE_LLM_NATIVE_BUILD: "off", ...env}
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
