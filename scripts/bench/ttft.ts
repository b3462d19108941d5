/**
 * Time to first token of a short prompt, edge-llm against llama.cpp's llama-server: the same SSE
 * client, the same model, threads, flash attention, context and slots, one request to each
 * server in turn, many times, so the host's drift hits both alike. `--env` adds edge-llm servers
 * with extra environment variables, to A/B a setting in the same run.
 *
 *   npx tsx scripts/bench/ttft.ts [--model PATH] [--requests 60] [--threads 1]
 *                                  [--flash-attention off|on] [--env KEY=VALUE,KEY=VALUE ...]
 *
 * Reports each server's median time to first token and the median of its per-request ratios to
 * llama-server's request right after it. docs/performance.md §3 quotes it; needs llama-server
 * (npx tsx scripts/build-llama-tools.ts) and uses the local CPU build when one is recorded, as
 * `serve` does.
 */
import path from "node:path";
import {fileURLToPath} from "node:url";
import {parseArgs} from "node:util";
import {readBuildRecord} from "../../src/backends/llama-cpp/native-build.js";
import {chooseWaitPolicy} from "../../src/backends/llama-cpp/wait-policy.js";
import {decodeOverSse} from "./clients.js";
import {llamaServerBuilt, startLlamaServer} from "./llama-server.js";
import {median} from "./report.js";
import {startBenchServer} from "./server.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const {values: args} = parseArgs({
    options: {
        model: {type: "string", default: path.resolve(root, process.env.EDGE_LLM_TEST_MODEL ?? "../shared/models/stories260K.gguf")},
        requests: {type: "string", default: "60"},
        threads: {type: "string", default: "1"},
        "flash-attention": {type: "string", default: "off"},
        env: {type: "string", multiple: true, default: []}
    }
});
if (!llamaServerBuilt()) {
    console.error("llama-server is not built: npx tsx scripts/build-llama-tools.ts");
    process.exit(1);
}

const threads = Number(args.threads);
const flashAttention = args["flash-attention"] === "on";
const contextSize = 1024;
const parallel = 4;
const record = await readBuildRecord(path.join(root, ".edge-llm/native-build.json"));
const nativeBuild = record?.gpu === false ? record : undefined;
const baseEnv = nativeBuild == null ? {} : chooseWaitPolicy({setting: "auto", env: {}}).env;
const parseEnv = (spec: string) => Object.fromEntries(spec.split(",").map((pair) => {
    const [key, ...value] = pair.split("=");
    return [key!, value.join("=")];
}));

interface Target {name: string; url: string; stop(): Promise<void>; ttft: number[]}
const targets: Target[] = [];
try {
    for (const spec of ["", ...args.env]) {
        const server = await startBenchServer({model: args.model, threads, flashAttention: flashAttention ? "on" : "off", contextSize, parallel, nativeBuild},
            {...baseEnv, ...spec === "" ? {} : parseEnv(spec)});
        targets.push({name: spec === "" ? "edge-llm" : `edge-llm ${spec}`, url: server.url, stop: () => server.stop(), ttft: []});
    }
    const reference = await startLlamaServer({model: args.model, threads, flashAttention, contextSize, parallel});
    targets.push({name: "llama-server", url: reference.url, stop: () => reference.stop(), ttft: []});

    // Warm-up: Node's JIT, first-call allocations, both servers' caches.
    for (let request = 0; request < 20; request++)
        for (const target of targets) await decodeOverSse(target.url, {prompt: `w${request} Once upon a time`, maxTokens: 4});
    // Every prompt is new (the request number in front), so neither server answers from a cached prompt.
    for (let request = 0; request < Number(args.requests); request++)
        for (const target of targets)
            target.ttft.push((await decodeOverSse(target.url, {prompt: `${request} Once upon a time`, maxTokens: 1})).ttftMs);

    const llamaServer = targets.at(-1)!.ttft;
    console.log(`${path.basename(args.model)}, ${threads} thread(s), flash attention ${flashAttention ? "on" : "off"}, ${nativeBuild == null ? "prebuilt" : "native"} binary, ${args.requests} requests per server\n`);
    console.log("| server | time to first token, ms (median) | of llama-server's, median of per-request ratios |\n| --- | ---: | ---: |");
    for (const target of targets) {
        const ratio = median(target.ttft.map((ms, request) => ms / llamaServer[request]!));
        console.log(`| ${target.name} | ${median(target.ttft).toFixed(2)} | ${(100 * ratio).toFixed(0)}% |`);
    }
} finally {
    for (const target of targets) await target.stop();
}
