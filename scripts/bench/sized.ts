/**
 * Benchmarks at a realistic size: on a model shaped like Llama-3.2-1B in Q4_0 (a synthetic one,
 * scripts/fixtures/synthetic-model.ts), where costs are weights and KV bytes rather than
 * per-token overhead. Everything against raw node-llama-cpp measured in the same run:
 * - threads: raw decode at every candidate count vs. the runtime's autotuned choice;
 * - decode and prefill: raw vs. SSE vs. WebSocket;
 * - concurrency: aggregate decode of 1/2/4/8 streams through the server vs. raw sequences in one context;
 * - memory: the server's peak RSS against model + KV, and RSS growth across 100 requests.
 */
import {CPU_BATCH_SIZE} from "../../src/backends/llama-cpp/batch-size.js";
import {readFile, mkdtemp, rm, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {getLlama, type LlamaContext, type LlamaModel, type Token} from "node-llama-cpp";
import {LlamaCppBackend} from "../../src/backends/llama-cpp/backend.js";
import {threadCandidates} from "../../src/backends/llama-cpp/thread-tuning.js";
import {decodeOverSse, decodeOverWs, openSocket, type DecodeJob} from "./clients.js";
import {RawDecoder} from "./raw.js";
import {startBenchServer} from "./server.js";
import {median} from "./report.js";

export interface SizedBenchOptions {
    model: string;
    runs: number;
    /** Tokens per decode run. */
    tokens: number;
    /** Tokens of the prefill prompt. */
    promptTokens: number;
    streams: number[];
    /** Requests for the RSS growth check. */
    leakRequests: number;
}

export interface SizedBenchReport {
    model: string;
    fileMiB: number;
    threads: {
        candidates: {threads: number; flashAttention: boolean; tokensPerSecond: number}[];
        best: {threads: number; flashAttention: boolean};
        autotuned: {threads: number; flashAttention: boolean};
        autotunedReason: string;
        autotunedRatioToBest: number;
    };
    decode: Record<"raw" | "sse" | "ws", {tokensPerSecond: number; ttftMs: number; ratioToRaw: number}>;
    prefill: Record<"raw" | "sse" | "ws", {tokensPerSecond: number; ratioToRaw: number}> & {promptTokens: number};
    concurrency: {streams: number; serverTokensPerSecond: number; rawTokensPerSecond: number; ratioToRaw: number; scalingVsOneStream: number}[];
    memory: {
        peakRssMiB: number; baselineRssMiB: number; peakAboveBaselineOverEstimate: number;
        /** What the runtime estimated before loading: weights, KV cache and compute buffers (node-llama-cpp's estimate). */
        runtimeEstimateMiB?: number; peakAboveBaselineOverRuntimeEstimate?: number; modelMiB: number; kvMiB: number; estimateMiB: number; peakOverEstimate: number; kvBytesPerToken: number; kvMiBPerSession: number; rssGrowthPercent: number; requests: number};
}

const r1 = (value: number) => Math.round(value * 10) / 10;
const r3 = (value: number) => Math.round(value * 1000) / 1000;

/** A prompt of about `tokens` tokens of plain words; `salt` makes each run's prompt new so no prefix cache helps. */
function promptOf(tokens: number, salt: number): string {
    // Words that are single tokens in the synthetic vocabulary (and common ones elsewhere).
    const words = ["the", "little", "dog", "went", "to", "the", "park", "and", "see", "a", "big", "tree", "with", "his", "friend"];
    return `${salt} ` + Array.from({length: tokens}, (_, index) => words[index % words.length]).join(" ");
}

export async function runSizedBench(options: SizedBenchOptions, log: (message: string) => void = () => {}): Promise<SizedBenchReport> {
    const {model, runs, tokens} = options;
    const fileBytes = (await stat(model)).size;
    const contextSize = Math.max(512, options.promptTokens * 2);

    log("threads and flash attention: raw decode per setting, and the autotuned choice");
    const threads = await benchThreads(model, runs, tokens);
    const chosen = threads.autotuned;

    const peak = async (phase: string) => log(`  server peak RSS after ${phase}: ${((await readRss(server.pid)).peak / 2 ** 20).toFixed(0)} MiB`);
    log(`decode and prefill: raw vs SSE vs WS at ${chosen.threads} thread(s), flash attention ${chosen.flashAttention ? "on" : "off"}`);
    const parallel = Math.max(...options.streams);
    const serverOptions = {model, threads: chosen.threads, flashAttention: chosen.flashAttention ? "on" as const : "off" as const, contextSize};
    const server = await startBenchServer({...serverOptions, parallel});
    const socket = await openSocket(server.url);
    await peak("loading");
    const raw = await RawDecoder.create(model, chosen.threads, contextSize, chosen.flashAttention);
    const job: DecodeJob = {prompt: "Once upon a time", maxTokens: tokens};
    const decodes = {raw: [] as {rate: number; ttft: number}[], sse: [] as {rate: number; ttft: number}[], ws: [] as {rate: number; ttft: number}[]};
    const prefills = {raw: [] as number[], sse: [] as number[], ws: [] as number[]};
    let promptTokens = 0;
    let salt = 0;
    try {
        const variants = {
            raw: {decode: () => raw.decode(job), prefill: (prompt: string) => raw.decode({prompt, maxTokens: 1})},
            sse: {decode: () => decodeOverSse(server.url, job), prefill: (prompt: string) => decodeOverSse(server.url, {prompt, maxTokens: 1})},
            ws: {decode: () => decodeOverWs(socket, job, `d${salt++}`), prefill: (prompt: string) => decodeOverWs(socket, {prompt, maxTokens: 1}, `p${salt++}`)}
        };
        promptTokens = raw.countTokens(promptOf(options.promptTokens, 0));
        for (const variant of Object.values(variants)) await variant.decode(); // warm-up
        for (let run = 0; run < runs; run++) {
            const order = (["raw", "sse", "ws"] as const).map((_, k, all) => all[(run + k) % all.length]!);
            for (const name of order) {
                const sample = await variants[name].decode();
                decodes[name].push({rate: sample.tokensPerSecond, ttft: sample.ttftMs});
                const prefill = await variants[name].prefill(promptOf(options.promptTokens, ++salt));
                prefills[name].push(promptTokens / (prefill.ttftMs / 1000));
            }
            log(`  run ${run + 1}/${runs}`);
        }
    } finally {
        await raw.dispose();
        socket.close();
    }
    const rawDecode = median(decodes.raw.map((entry) => entry.rate));
    const rawPrefill = median(prefills.raw);
    const decode = Object.fromEntries((["raw", "sse", "ws"] as const).map((name) => {
        const rate = median(decodes[name].map((entry) => entry.rate));
        return [name, {tokensPerSecond: r1(rate), ttftMs: r1(median(decodes[name].map((entry) => entry.ttft))), ratioToRaw: r3(rate / rawDecode)}];
    })) as SizedBenchReport["decode"];
    const prefill = {
        promptTokens,
        ...Object.fromEntries((["raw", "sse", "ws"] as const).map((name) => [name, {tokensPerSecond: r1(median(prefills[name])), ratioToRaw: r3(median(prefills[name]) / rawPrefill)}]))
    } as SizedBenchReport["prefill"];

    await peak("loading, decode and prefill");
    log(`concurrency: ${options.streams.join("/")} streams, server vs raw sequences in one context`);
    const concurrency: SizedBenchReport["concurrency"] = [];
    const rawBatch = await RawBatch.create(model, chosen.threads, contextSize, parallel, chosen.flashAttention);
    try {
        for (const streams of options.streams) {
            // A server configured for as many requests at once (`--parallel`, 4 by default), as
            // one would run it for that load: on a server with more sequences than streams, where
            // each stream lands depends on what the others cache (see docs/performance.md).
            const sized = streams === parallel ? server : await startBenchServer({...serverOptions, parallel: streams});
            const serverRates: number[] = [];
            const rawRates: number[] = [];
            try {
                // Warm-up: a sequence's first batches allocate (141–207 ms for a 5-token prompt, ~45 ms after).
                await aggregate(streams, () => decodeOverSse(sized.url, {...job, maxTokens: 8}).then((sample) => sample.tokens));
                await rawBatch.aggregate(streams, {...job, maxTokens: 8});
                for (let run = 0; run < Math.max(2, Math.ceil(runs / 2)); run++) {
                    serverRates.push(await aggregate(streams, () => decodeOverSse(sized.url, job).then((sample) => sample.tokens)));
                    rawRates.push(await rawBatch.aggregate(streams, job));
                }
            } finally {
                if (sized !== server) await sized.stop();
            }
            concurrency.push({streams, serverTokensPerSecond: r1(median(serverRates)), rawTokensPerSecond: r1(median(rawRates)), ratioToRaw: r3(median(serverRates) / median(rawRates)), scalingVsOneStream: 0});
        }
    } finally {
        await rawBatch.dispose();
    }
    const single = concurrency.find((entry) => entry.streams === 1)?.serverTokensPerSecond ?? concurrency[0]!.serverTokensPerSecond;
    for (const entry of concurrency) entry.scalingVsOneStream = r3(entry.serverTokensPerSecond / single);

    await peak("concurrency");
    log(`memory: ${options.leakRequests} requests, peak RSS against model + KV`);
    let memory: SizedBenchReport["memory"];
    try {
        const health = await (await fetch(`${server.url}/health`)).json() as {model: {kvBytesPerToken: number; contextSize: number; parallel: number}};
        const props = await (await fetch(`${server.url}/props`)).json() as {runtime: {memory_estimate: {model_bytes: number; context_bytes: number} | null}};
        const runtimeEstimate = props.runtime.memory_estimate == null ? undefined : props.runtime.memory_estimate.model_bytes + props.runtime.memory_estimate.context_bytes;
        const kvBytesPerToken = health.model.kvBytesPerToken;
        const kvBytes = kvBytesPerToken * health.model.contextSize * health.model.parallel;
        const warm = Math.max(1, Math.floor(options.leakRequests / 10));
        for (let index = 0; index < warm; index++) await decodeOverSse(server.url, {prompt: promptOf(32, 1000 + index), maxTokens: 8});
        const before = await readRss(server.pid);
        for (let index = warm; index < options.leakRequests; index++) await decodeOverSse(server.url, {prompt: promptOf(32, 1000 + index), maxTokens: 8});
        const after = await readRss(server.pid);
        const estimate = fileBytes + kvBytes;
        memory = {
            peakRssMiB: r1(after.peak / 2 ** 20),
            baselineRssMiB: r1(server.rssBeforeModel / 2 ** 20),
            peakAboveBaselineOverEstimate: r3((after.peak - server.rssBeforeModel) / estimate),
            ...(runtimeEstimate == null ? {} : {
                runtimeEstimateMiB: r1(runtimeEstimate / 2 ** 20),
                peakAboveBaselineOverRuntimeEstimate: r3((after.peak - server.rssBeforeModel) / runtimeEstimate)
            }),
            modelMiB: r1(fileBytes / 2 ** 20),
            kvMiB: r1(kvBytes / 2 ** 20),
            estimateMiB: r1(estimate / 2 ** 20),
            peakOverEstimate: r3(after.peak / estimate),
            kvBytesPerToken,
            kvMiBPerSession: r1(kvBytesPerToken * health.model.contextSize / 2 ** 20),
            rssGrowthPercent: r1(((after.current - before.current) / before.current) * 100),
            requests: options.leakRequests
        };
    } finally {
        await server.stop();
    }
    return {model: path.basename(model), fileMiB: r1(fileBytes / 2 ** 20), threads, decode, prefill, concurrency, memory};
}

async function benchThreads(model: string, runs: number, tokens: number): Promise<SizedBenchReport["threads"]> {
    const llama = await getLlama({gpu: false, build: "never"});
    const candidates = threadCandidates(llama.cpuMathCores);
    await llama.dispose();
    const settings = candidates.flatMap((threads) => [false, true].map((flashAttention) => ({threads, flashAttention})));
    const rates = settings.map(() => [] as number[]);
    const decoders: RawDecoder[] = [];
    try {
        for (const setting of settings) decoders.push(await RawDecoder.create(model, setting.threads, 512, setting.flashAttention));
        for (const decoder of decoders) await decoder.decode({prompt: "Once upon a time", maxTokens: 8});
        for (let run = 0; run < Math.max(3, Math.ceil(runs / 2)); run++)
            for (const [index, decoder] of decoders.entries())
                rates[index]!.push((await decoder.decode({prompt: "Once upon a time", maxTokens: Math.min(tokens, 64)})).tokensPerSecond);
    } finally {
        for (const decoder of decoders) await decoder.dispose();
    }
    const measured = settings.map((setting, index) => ({...setting, tokensPerSecond: r1(median(rates[index]!))}));
    const best = measured.reduce((a, b) => (b.tokensPerSecond > a.tokensPerSecond ? b : a));

    // The runtime's own choice, tuned from scratch (empty cache), as a first `serve` would.
    const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-bench-tune-"));
    const backend = await LlamaCppBackend.create({gpu: false});
    try {
        const loaded = await backend.loadModel({path: model, id: "tune", parallel: 1, contextSize: 256, threadTuning: {cacheFile: path.join(dir, "tuning.json")}});
        const autotuned = {threads: loaded.description.threads, flashAttention: loaded.description.flashAttention};
        const autotunedReason = loaded.description.threadsReason;
        await loaded.dispose();
        const autotunedRate = measured.find((entry) => entry.threads === autotuned.threads && entry.flashAttention === autotuned.flashAttention)?.tokensPerSecond ?? 0;
        return {
            candidates: measured, best: {threads: best.threads, flashAttention: best.flashAttention}, autotuned, autotunedReason,
            autotunedRatioToBest: r3(autotunedRate / best.tokensPerSecond)
        };
    } finally {
        await backend.dispose();
        await rm(dir, {recursive: true, force: true});
    }
}

/** `streams` requests at once; aggregate tokens/s from the first request to the last answer. */
async function aggregate(streams: number, request: () => Promise<number>): Promise<number> {
    const started = performance.now();
    const counts = await Promise.all(Array.from({length: streams}, request));
    return counts.reduce((sum, count) => sum + count, 0) / ((performance.now() - started) / 1000);
}

/** Raw node-llama-cpp with several sequences in one context, decoding at once (it batches them). */
class RawBatch {
    private constructor(private readonly model: LlamaModel, private readonly context: LlamaContext) {}

    static async create(modelPath: string, threads: number, contextSize: number, sequences: number, flashAttention: boolean) {
        const llama = await getLlama({gpu: false, build: "never", maxThreads: threads, logLevel: "error" as never});
        const model = await llama.loadModel({modelPath});
        const context = await model.createContext({contextSize, sequences, batchSize: CPU_BATCH_SIZE, threads: {ideal: threads, min: 1}, flashAttention});
        return new RawBatch(model, context);
    }

    aggregate(streams: number, job: DecodeJob): Promise<number> {
        return aggregate(streams, async () => {
            const sequence = this.context.getSequence();
            try {
                const tokens = this.model.tokenize(job.prompt);
                if (this.model.tokens.bos != null) tokens.unshift(this.model.tokens.bos);
                let count = 0;
                for await (const token of sequence.evaluate(tokens as Token[], {temperature: 0})) {
                    this.model.detokenize([token]);
                    if (++count >= job.maxTokens) break;
                }
                return count;
            } finally {
                sequence.dispose();
            }
        });
    }

    async dispose() {
        await this.context.dispose();
        await this.model.dispose();
    }
}

/** Current and peak resident memory of a process (Linux /proc). */
async function readRss(pid: number): Promise<{current: number; peak: number}> {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return {current: kib("VmRSS"), peak: kib("VmHWM")};
}

const describeSetting = ({threads, flashAttention}: {threads: number; flashAttention: boolean}) =>
    `${threads} thread${threads === 1 ? "" : "s"}, flash attention ${flashAttention ? "on" : "off"}`;

export function renderSized(report: SizedBenchReport, runs: number, tokens: number): string {
    const {threads, decode, prefill, concurrency, memory} = report;
    const parallel = Math.max(...concurrency.map((entry) => entry.streams));
    const pct = (value: number) => `${(value * 100).toFixed(1)}%`;
    return `
## At a realistic size: \`${report.model}\` (${report.fileMiB} MiB)

${/1b/i.test(report.model) ? "Llama-3.2-1B's transformer (hidden 2048, 16 layers, 32 heads / 8 KV heads, FFN 8192) in Q4_0" : "A synthetic model"}
with deterministic pseudo-random weights and a 512-token vocabulary, written on demand by
scripts/fixtures/synthetic-model.ts. Its text is meaningless; its cost is real.
Medians of ${runs} runs of ${tokens} tokens; raw = node-llama-cpp 3.21.1 used directly with the same
settings, measured in the same run.

**Threads and flash attention.** Raw decode tok/s per thread count, flash attention off / on: ${[...new Set(threads.candidates.map((entry) => entry.threads))].map((count) => `${count}: ${threads.candidates.filter((entry) => entry.threads === count).map((entry) => entry.tokensPerSecond).join(" / ")}`).join(", ")}.
The runtime's autotuned choice (measured at first load, cached): **${describeSetting(threads.autotuned)}**
(${threads.autotunedReason}), ${pct(threads.autotunedRatioToBest)} of the best hand-picked setting (${describeSetting(threads.best)}); target ≥ 90%.
Every path below runs on the autotuned setting.

| path | decode tok/s | vs raw | TTFT ms | prefill tok/s (${prefill.promptTokens}-token prompt) | vs raw |
| --- | ---: | ---: | ---: | ---: | ---: |
${(["raw", "sse", "ws"] as const).map((name) => `| ${name === "raw" ? "raw node-llama-cpp" : name === "sse" ? "server, SSE" : "server, WebSocket"} | ${decode[name].tokensPerSecond} | ${pct(decode[name].ratioToRaw)} | ${decode[name].ttftMs} | ${prefill[name].tokensPerSecond} | ${pct(prefill[name].ratioToRaw)} |`).join("\n")}

Targets: SSE decode ≥ 98% of raw, prefill ≥ 95% of raw. Prefill is the prompt's tokens over the time
to the first token (the server's includes HTTP and tokenizing); every run's prompt is new, so no
prefix cache helps.

**Concurrent streams** (continuous batching: every running sequence decodes in the same llama.cpp
batch, and a new request joins between steps). Each row's server has as many sequences as streams
(\`--parallel\`, 4 by default); raw is one context of ${parallel} sequences:

| streams | server aggregate tok/s | raw aggregate tok/s | vs raw | vs one stream |
| ---: | ---: | ---: | ---: | ---: |
${concurrency.map((entry) => `| ${entry.streams} | ${entry.serverTokensPerSecond} | ${entry.rawTokensPerSecond} | ${pct(entry.ratioToRaw)} | ${entry.scalingVsOneStream}× |`).join("\n")}

Target: 4 streams ≥ 1.5× one stream. Running them one after another gives one stream's rate (1.0×).

**Memory.** Peak RSS of the server process ${memory.peakRssMiB} MiB against model ${memory.modelMiB} MiB + KV
${memory.kvMiB} MiB (all ${Math.max(...concurrency.map((entry) => entry.streams))} sequences) = ${memory.estimateMiB} MiB: ${memory.peakOverEstimate}× (target within 10%).
The process held ${memory.baselineRssMiB} MiB before the model was loaded (Node, the compiled server's modules, llama.cpp's library:
${pct(memory.baselineRssMiB / memory.estimateMiB)} of the estimate on its own);
what the model and its context added at peak is **${memory.peakAboveBaselineOverEstimate}×** the estimate (${memory.peakAboveBaselineOverEstimate <= 1.1 ? "within" : "not within"} 10%)${memory.runtimeEstimateMiB == null ? "" : `, and
${memory.peakAboveBaselineOverRuntimeEstimate}× the ${memory.runtimeEstimateMiB} MiB the runtime estimated before loading (weights, KV cache and llama.cpp's compute buffers, node-llama-cpp's estimate; its memory check uses it)`}.
KV: ${memory.kvBytesPerToken} bytes per token, ${memory.kvMiBPerSession} MiB per active session (one full sequence).
RSS growth from request ${Math.max(1, Math.floor(memory.requests / 10))} to request ${memory.requests}: ${memory.rssGrowthPercent}%.
`;
}
