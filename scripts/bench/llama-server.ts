import {spawn} from "node:child_process";
import {existsSync} from "node:fs";
import {createServer} from "node:net";
import {llamaServerPath} from "../build-llama-tools.js";

/**
 * llama.cpp's own llama-server (scripts/build-llama-tools.ts), started on loopback with the same
 * model, threads, flash attention, context and slots as the edge-llm server it is compared with,
 * and measured by the same SSE client.
 */
export interface LlamaServer {
    url: string;
    /** The server process, e.g. to read its CPU time. */
    pid: number;
    stop(): Promise<void>;
}

export const llamaServerBuilt = () => existsSync(llamaServerPath);

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const probe = createServer();
        probe.once("error", reject);
        probe.listen(0, "127.0.0.1", () => {
            const {port} = probe.address() as {port: number};
            probe.close(() => resolve(port));
        });
    });
}

export async function startLlamaServer(options: {model: string; threads: number; flashAttention: boolean; contextSize: number; parallel: number}): Promise<LlamaServer> {
    const port = await freePort();
    // -c is the whole context, shared by the slots; edge-llm's contextSize is per sequence.
    const child = spawn(llamaServerPath, [
        "-m", options.model, "--host", "127.0.0.1", "--port", String(port), "-t", String(options.threads), "-tb", String(options.threads),
        "-c", String(options.contextSize * options.parallel), "-np", String(options.parallel), "-fa", options.flashAttention ? "on" : "off",
        "--no-webui", "--log-disable"
    ], {stdio: ["ignore", "ignore", "ignore"]});
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    let alive = true;
    void exited.then(() => (alive = false));
    const url = `http://127.0.0.1:${port}`;
    const deadline = performance.now() + 60_000;
    while (performance.now() < deadline && alive) {
        const ready = await fetch(`${url}/health`).then((response) => response.ok, () => false);
        if (ready) {
            return {
                url,
                pid: child.pid!,
                async stop() {
                    child.kill("SIGTERM");
                    await exited;
                }
            };
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill("SIGKILL");
    throw new Error(alive ? "llama-server did not become ready in 60 s" : "llama-server exited before it was ready");
}
