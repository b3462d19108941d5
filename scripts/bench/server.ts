import {spawn, type ChildProcess} from "node:child_process";
import {existsSync} from "node:fs";
import path from "node:path";
import {createInterface} from "node:readline";
import {fileURLToPath} from "node:url";
import type {ServerProcessOptions} from "./server-process.js";

const here = path.dirname(fileURLToPath(import.meta.url));

export interface BenchServer {
    url: string;
    /** The server process, e.g. to read its CPU time. */
    pid: number;
    /** Its RSS before the model was loaded (Node, modules, llama.cpp's library). */
    rssBeforeModel: number;
    /** Stops the process the way a user would (SIGTERM: sessions persisted where enabled). */
    stop(): Promise<void>;
}

/**
 * Starts scripts/bench/server-process.ts in its own process and waits until it serves. Like
 * `serve` on the CPU it runs with one libuv pool thread (src/cli/single-pool.ts) unless `env` says otherwise.
 */
export async function startBenchServer(options: ServerProcessOptions, env: Record<string, string> = {}): Promise<BenchServer> {
    // The compiled server, as `npm start` runs it (`npm run bench` builds first); tsx's loader
    // thread alone holds ~35 MiB, which users do not pay.
    const compiled = path.resolve(here, "../../dist/scripts/bench/server-process.js");
    const command = existsSync(compiled) ? [compiled] : ["--import", "tsx", path.join(here, "server-process.ts")];
    const child: ChildProcess = spawn(process.execPath, [...command, JSON.stringify(options)], {
        cwd: path.resolve(here, "../.."),
        env: {...process.env, UV_THREADPOOL_SIZE: "1", ...env},
        stdio: ["ignore", "pipe", "inherit"]
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    for await (const line of createInterface({input: child.stdout!})) {
        if (line.startsWith("{")) {
            const {url, pid, rssBeforeModel} = JSON.parse(line) as {url: string; pid: number; rssBeforeModel: number};
            return {
                url,
                pid,
                rssBeforeModel,
                async stop() {
                    child.kill("SIGTERM");
                    await exited;
                }
            };
        }
    }
    throw new Error("the server process exited before it was ready");
}
