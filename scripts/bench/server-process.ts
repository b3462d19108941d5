/**
 * The server under test, in its own process as users run it. Takes one JSON argument
 * (`ServerProcessOptions`) and prints one JSON line with its URL once the model is loaded.
 */
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {LlamaCppBackend} from "../../src/backends/llama-cpp/backend.js";
import {Runtime, type KvOptions} from "../../src/runtime/runtime.js";
import {startServer} from "../../src/api/server.js";
import {PowerService} from "../../src/power/service.js";
import type {GovernorThresholdsInput} from "../../src/power/governor-policy.js";
import type {NativeBuildRecord} from "../../src/backends/llama-cpp/native-build.js";

export interface ServerProcessOptions {
    model: string;
    /** Unset: autotuned at load as `serve` does (threads and flash attention, from an empty cache). */
    threads?: number;
    /** With `threads` set; default "auto" (off on the CPU). */
    flashAttention?: "auto" | "on" | "off";
    contextSize: number;
    parallel?: number;
    kv?: KvOptions;
    /** Run the power governor over this (fake) sysfs root. */
    power?: {sensorRoot: string; pollIntervalMs?: number; thresholds?: GovernorThresholdsInput};
    /** A local build to load instead of the prebuilt binary. */
    nativeBuild?: NativeBuildRecord;
}

const options = JSON.parse(process.argv[2]!) as ServerProcessOptions;
const backend = await LlamaCppBackend.create({gpu: false, nativeBuild: options.nativeBuild});
/** RSS of the process with Node, the modules and llama.cpp's library loaded, before the model: the baseline the model adds to. */
const rssBeforeModel = process.memoryUsage().rss;
const runtime = new Runtime(backend, {kv: options.kv});
const tuningDir = options.threads == null ? await mkdtemp(path.join(os.tmpdir(), "edge-llm-bench-server-")) : undefined;
await runtime.load({
    path: options.model, id: "bench", parallel: options.parallel ?? 1, contextSize: options.contextSize,
    threads: options.threads, flashAttention: options.flashAttention,
    threadTuning: tuningDir == null ? undefined : {cacheFile: path.join(tuningDir, "tuning.json")}
});
if (tuningDir != null) await rm(tuningDir, {recursive: true, force: true});
const power = options.power == null ? undefined : new PowerService({runtime, ...options.power}).start();
const server = await startServer({runtime, host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 22, maxWsFrameBytes: 1 << 20, power});
process.stdout.write(JSON.stringify({url: server.url, pid: process.pid, rssBeforeModel}) + "\n");
process.on("SIGTERM", async () => {
    power?.stop();
    await server.close();
    await runtime.dispose();
    process.exit(0);
});
