/**
 * Soak test (not run in CI; test/soak.test.ts runs a short version): 8 clients over mixed
 * endpoints (chat, streams, WebSocket, models, health, bad requests, dropped streams) for 10
 * minutes, reporting the server's RSS and p50/p99 time to first token per interval, and RSS
 * growth after the warm-up (target < 5%).
 *
 *   npx tsx scripts/soak.ts                       # 10 minutes against a server it starts
 *   npx tsx scripts/soak.ts --duration 60 --interval 10
 *   npx tsx scripts/soak.ts --no-kv-spill              # the started server without the KV disk tier
 *   npx tsx scripts/soak.ts --url http://127.0.0.1:8080 --model my-model --api-key KEY
 */
import {parseArgs} from "node:util";
import {existsSync} from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {runSoak} from "./soak/soak.js";
import {startServeProcess, type ServeProcess} from "./soak/server-process.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const {values} = parseArgs({
    options: {
        duration: {type: "string", default: "600"},
        interval: {type: "string", default: "30"},
        warmup: {type: "string"},
        clients: {type: "string", default: "8"},
        url: {type: "string"},
        model: {type: "string"},
        "api-key": {type: "string"},
        /** Runs the started server without the KV disk tier (to tell its cost from the rest). */
        "no-kv-spill": {type: "boolean", default: false},
        json: {type: "boolean", default: false}
    }
});

const seconds = (value: string) => {
    const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(value);
    if (match == null) throw new Error(`not a duration: ${value} (e.g. 600, 90s, 10m)`);
    return Number(match[1]) * ({s: 1, m: 60, h: 3600}[match[2] as "s" | "m" | "h"] ?? 1) * 1000;
};

let server: ServeProcess | undefined;
let url = values.url;
let model = values.model ?? "default";
if (url == null) {
    const modelPath = values.model ?? process.env.EDGE_LLM_TEST_MODEL ?? path.join(repoRoot, "../shared/models/stories260K.gguf");
    if (!existsSync(modelPath)) throw new Error(`no model at ${modelPath}; pass --model or --url`);
    server = await startServeProcess(["--model", modelPath, "--parallel", "4", "--ctx-size", "512"], values["no-kv-spill"] ? {EDGE_LLM_KV_SPILL: "false"} : {});
    url = server.url;
    model = "default";
}

const durationMs = seconds(values.duration!);
const intervalMs = seconds(values.interval!);
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
console.error(`soak: ${values.clients} clients against ${url} for ${durationMs / 1000} s, intervals of ${intervalMs / 1000} s`);
console.error("   t (s)  requests  errors  RSS mean (MiB)  heap (MiB)  TTFT p50 (ms)  TTFT p99 (ms)");
const report = await runSoak({
    url,
    model,
    clients: Number(values.clients),
    durationMs,
    intervalMs,
    warmupMs: values.warmup == null ? undefined : seconds(values.warmup),
    apiKey: values["api-key"],
    onInterval: (interval) => console.error(
        `${String(interval.atSeconds).padStart(8)}  ${String(interval.requests).padStart(8)}  ${String(interval.errors).padStart(6)}  ` +
        `${mib(interval.rssBytes).padStart(14)}  ${mib(interval.heapUsedBytes).padStart(10)}  ${String(interval.ttftP50Ms).padStart(13)}  ${String(interval.ttftP99Ms).padStart(13)}`)
});
await server?.stop();
console.error(`requests ${report.requests}, errors ${report.errors}; RSS after warm-up ${mib(report.rssAfterWarmupBytes)} MiB, ` +
    `at the end ${mib(report.rssEndBytes)} MiB: growth ${(report.rssGrowth * 100).toFixed(2)}% (target < 5%)`);
for (const example of report.errorExamples) console.error(`  error: ${example}`);
if (values.json) console.log(JSON.stringify(report, null, 2));
process.exitCode = report.errors > 0 || report.rssGrowth >= 0.05 ? 1 : 0;
