import {spawn, type ChildProcessWithoutNullStreams} from "node:child_process";
import {mkdtempSync, rmSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export interface ServeProcess {
    url: string;
    child: ChildProcessWithoutNullStreams;
    /** SIGTERM, then resolves with the exit code (the KV spill folder is removed). */
    stop(): Promise<number | null>;
}

/**
 * `edge-llm serve` in its own process, as users run it, with its KV spill folder in a temporary
 * directory; resolves once the model is loaded.
 */
export async function startServeProcess(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
    const spillDir = mkdtempSync(path.join(os.tmpdir(), "edge-llm-soak-kv-"));
    const child = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "src/cli/main.ts"), "serve", "--port", "0", ...args], {
        cwd: repoRoot,
        env: {...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("EDGE_LLM_"))), EDGE_LLM_KV_SPILL_DIR: spillDir, EDGE_LLM_NATIVE_BUILD: "off", ...env}
    });
    let stderr = "";
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the server did not start:\n${stderr}`)), 60_000);
        child.stderr.setEncoding("utf8").on("data", (text: string) => {
            stderr += text;
            const ready = /"url":"(http:[^"]+)".*"msg":"ready: /.exec(stderr);
            if (ready != null) {
                clearTimeout(timer);
                stderr = "";
                resolve(ready[1]!);
            }
        });
        void exited.then((code) => reject(new Error(`the server exited (${code}):\n${stderr}`)));
    });
    return {
        url,
        child,
        async stop() {
            child.kill("SIGTERM");
            const code = await exited;
            rmSync(spillDir, {recursive: true, force: true});
            return code;
        }
    };
}
