/**
 * The binary and the OpenMP wait policy: node-llama-cpp's prebuilt binary against the local
 * cpu-native build (scripts/build-backend.ts cpu-native) under each wait policy, each in its own
 * process — raw decode/prefill speed, CPU time per token and idle CPU — plus edge-llm's own
 * server (SSE, one stream and several) on the binary and policy `serve` would choose here.
 */
import {execFile, spawn} from "node:child_process";
import {existsSync, readFileSync, readdirSync} from "node:fs";
import {promisify} from "node:util";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {readBuildRecord, type NativeBuildRecord} from "../../src/backends/llama-cpp/native-build.js";
import {chooseWaitPolicy, type WaitPolicySetting} from "../../src/backends/llama-cpp/wait-policy.js";
import type {NativeChildOptions, NativeChildResult} from "./native-child.js";
import {decodeOverSse} from "./clients.js";
import {startBenchServer} from "./server.js";
import {median} from "./report.js";
import {llamaBenchPath} from "../build-llama-tools.js";
import {llamaServerBuilt, startLlamaServer} from "./llama-server.js";

const here = path.dirname(fileURLToPath(import.meta.url));

export interface NativeBenchOptions {
    model: string;
    threads: number;
    tokens: number;
    promptTokens: number;
    runs: number;
    /**
     * Runs of the server against llama-bench and llama-server (default `runs`). This host's speed
     * swings by a third within seconds, so a small model that runs in milliseconds gets more.
     */
    serverRuns?: number;
    streams: number;
    /** The bars this model is held to, for the report. */
    bars?: string;
    /** The build record; default .edge-llm/native-build.json. */
    recordFile?: string;
}

export interface NativeBenchRow extends NativeChildResult {
    binary: "prebuilt" | "native";
    policy: WaitPolicySetting;
    /** libuv pool threads (UV_THREADPOOL_SIZE): node-llama-cpp decodes on them. */
    pool: number;
    flashAttention: boolean;
    env: Record<string, string>;
}

export interface NativeBenchReport {
    model: string;
    threads: number;
    bars?: string;
    native?: {preset: string; cmakeOptions: Record<string, string>; builtAt: string};
    /** Why there is no native row, when there is none. */
    skipped?: string;
    rows: NativeBenchRow[];
    /** llama.cpp's own llama-bench built from the same source (scripts/build-llama-tools.ts), when built: the faster of flash attention off and on, and both. */
    llamaBench?: {decodeTokensPerSecond: number; prefillTokensPerSecond: number; build: string; byFlashAttention: {flashAttention: boolean; decodeTokensPerSecond: number; prefillTokensPerSecond: number}[]};
    /** How many runs the server, llama-bench interleaved and llama-server had (older reports: `runs`). */
    serverRuns?: number;
    /** edge-llm over SSE on the binary, policy and autotuned settings serve chooses here. */
    server: ServerFigures & {
        binary: "prebuilt" | "native"; policy: string; threads: number; flashAttention: boolean; settingsReason: string;
        /** Which loop decoded a lone stream (/props runtime.decode_loop). */
        decodeLoop?: string;
    };
    /**
     * llama-bench at the server's own settings (threads, flash attention, wait policy), one run
     * between each of the server's runs: tg at the same token count, pp at the prompt's tokens.
     */
    llamaBenchInterleaved?: {
        decodeTokensPerSecond: number; prefillTokensPerSecond: number; promptTokens: number;
        /** Medians of each run's ratio of edge-llm's figure to the llama-bench run right before it (absent in older reports). */
        decodeRatio?: number; prefillRatio?: number;
    };
    /** llama.cpp's llama-server from the same source, same settings, same client, runs interleaved with edge-llm's (or why it could not be compared). */
    llamaServer?: ServerFigures | {failed: string};
}

export interface ServerFigures {
    decodeTokensPerSecond: number;
    prefillTokensPerSecond: number;
    streams: number;
    streamsTokensPerSecond: number;
    /** Median time to first token of a short prompt, ms. */
    ttftMs: number;
    /**
     * CPU time per token of a one-stream decode, medians (Linux): the busiest server thread (the
     * one that decodes), the server's other threads together (JavaScript, V8's helpers) and the
     * SSE client (the bench process). On a machine with few cores the latter two take time from the first.
     */
    cpuPerToken?: {decodeThreadUs: number; otherThreadsUs: number; clientUs: number};
}

/** CPU time so far of each thread of `pid`, µs (Linux; empty elsewhere). */
function threadCpuMicros(pid: number): Map<string, number> {
    const times = new Map<string, number>();
    try {
        for (const thread of readdirSync(`/proc/${pid}/task`))
            times.set(thread, Number(readFileSync(`/proc/${pid}/task/${thread}/schedstat`, "utf8").split(" ")[0]) / 1000);
    } catch {
        // Not Linux, or the process is gone.
    }
    return times;
}

/** The rows: node's default libuv pool (4 threads) and one pool thread, as `serve` runs a local OpenMP build. */
const NATIVE_ROWS: {policy: NativeBenchRow["policy"]; pool: number; flashAttention: boolean}[] = [
    {policy: "spin", pool: 4, flashAttention: false},
    {policy: "passive", pool: 1, flashAttention: false},
    {policy: "short-spin", pool: 1, flashAttention: false},
    {policy: "spin", pool: 1, flashAttention: false},
    {policy: "active", pool: 1, flashAttention: false},
    {policy: "spin", pool: 1, flashAttention: true}
];

function runChild(options: NativeChildOptions, env: Record<string, string>): Promise<NativeChildResult> {
    return new Promise((resolve, reject) => {
        const cleanEnv = {...process.env};
        delete cleanEnv.OMP_WAIT_POLICY;
        delete cleanEnv.GOMP_SPINCOUNT;
        const child = spawn(process.execPath, ["--import", "tsx", path.join(here, "native-child.ts"), JSON.stringify(options)], {
            env: {...cleanEnv, ...env}, stdio: ["ignore", "pipe", "inherit"]
        });
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (text: string) => (out += text));
        child.once("error", reject);
        child.once("exit", (code) => {
            const line = out.split("\n").find((text) => text.startsWith("{"));
            if (code === 0 && line != null) resolve(JSON.parse(line) as NativeChildResult);
            else reject(new Error(`native-child exited with ${code}`));
        });
    });
}

export async function runNativeBench(options: NativeBenchOptions, log: (message: string) => void = () => {}): Promise<NativeBenchReport> {
    const record = await readBuildRecord(options.recordFile ?? path.resolve(here, "../../.edge-llm/native-build.json"));
    const usable: NativeBuildRecord | undefined = record?.gpu === false ? record : undefined;
    const childOptions = {model: options.model, threads: options.threads, tokens: options.tokens, promptTokens: options.promptTokens, runs: options.runs, streams: options.streams};
    const rows: NativeBenchRow[] = [];
    // Interleave: a round measures every configuration once, so drift hits them alike.
    const configurations: Omit<NativeBenchRow, keyof NativeChildResult>[] = [
        {binary: "prebuilt", policy: "spin", pool: 4, flashAttention: false, env: {}},
        {binary: "prebuilt", policy: "spin", pool: 1, flashAttention: false, env: {}},
        {binary: "prebuilt", policy: "spin", pool: 1, flashAttention: true, env: {}},
        ...(usable == null ? [] : NATIVE_ROWS.map(({policy, pool, flashAttention}) => ({binary: "native" as const, policy, pool, flashAttention, env: chooseWaitPolicy({setting: policy, env: {}}).env})))
    ];
    for (const configuration of configurations) {
        log(`${configuration.binary}, wait policy ${configuration.policy}, ${configuration.pool} pool thread(s), flash attention ${configuration.flashAttention ? "on" : "off"}`);
        const result = await runChild({...childOptions, flashAttention: configuration.flashAttention, cmakeOptions: configuration.binary === "native" ? usable!.cmakeOptions : undefined},
            {...configuration.env, UV_THREADPOOL_SIZE: String(configuration.pool)});
        rows.push({...configuration, ...result});
    }

    const llamaBench = existsSync(llamaBenchPath) ? await runLlamaBench(options, log) : undefined;

    // The server as `serve` would run here: native when built, with the wait policy chosen for AC power.
    const policy = chooseWaitPolicy({setting: "auto", env: {}});
    // serve relaunches itself with one pool thread when it decodes on the CPU (src/cli/single-pool.ts).
    const env: Record<string, string> = usable == null ? {UV_THREADPOOL_SIZE: "1"} : {...policy.env, UV_THREADPOOL_SIZE: "1"};
    log(`edge-llm over SSE: ${usable == null ? "prebuilt" : "native"} binary${usable == null ? "" : `, ${policy.policy}`}`);
    // No thread count: it autotunes threads and flash attention at load, as serve does.
    const server = await startBenchServer({
        model: options.model, parallel: options.streams,
        contextSize: Math.max(512, options.promptTokens + options.tokens + 16), nativeBuild: usable
    }, env);
    const props = await (await fetch(`${server.url}/props`)).json() as {runtime: {threads: number; threads_reason: string; flash_attention: boolean; decode_loop: {kind: string} | null}};
    const reference = llamaServerBuilt() ? await startLlamaServer({
        model: options.model, threads: props.runtime.threads, flashAttention: props.runtime.flash_attention,
        contextSize: Math.max(512, options.promptTokens + options.tokens + 16), parallel: options.streams
    }).catch((error: unknown) => {
        log(`llama-server not measured: ${(error as Error).message}`);
        return undefined;
    }) : undefined;
    if (reference != null) log("llama.cpp's llama-server over SSE, interleaved");
    const words = ["the", "little", "dog", "went", "to", "park", "and", "saw", "a", "big", "tree"];
    const measured = [server, ...reference == null ? [] : [reference]].map(({url, pid}) => ({
        url, pid, decode: [] as number[], ttft: [] as number[], prefill: [] as number[], streams: [] as number[],
        cpu: {decodeThread: [] as number[], otherThreads: [] as number[], client: [] as number[]}, failed: undefined as string | undefined
    }));
    // llama-server gives up on some synthetic models' nonsense ("does not match the expected
    // Content-only format"): from then on it is not compared, and the report says why.
    const each = async (work: (target: typeof measured[number]) => Promise<void>) => {
        for (const target of measured) {
            if (target.failed != null) continue;
            if (target === measured[0]) {
                await work(target);
                continue;
            }
            await work(target).catch((error: unknown) => {
                target.failed = (error as Error).message;
                log(`llama-server not compared: ${target.failed}`);
            });
        }
    };
    const interleaved = {decode: [] as number[], prefill: [] as number[]};
    let promptTokens = 0;
    try {
        // Warm-up: Node's JIT compiles the streaming path on the other core for the first thousands
        // of tokens (a small model streams 20% slower meanwhile); llama-server's C++ needs none.
        // At least 3 full-length requests, and 2 s.
        const warmUpStart = performance.now();
        for (let warmUp = 0; warmUp < 3 || performance.now() - warmUpStart < 2000; warmUp++)
            await each(async (target) => void await decodeOverSse(target.url, {prompt: `w${warmUp} Once upon a time`, maxTokens: options.tokens}));
        // The prefill prompt has llama-bench's pp length in this model's tokens, exactly where a
        // word fits (a run tag in front keeps every prompt new); llama-bench then runs at the
        // prompt's own length, as two more tokens cost a 1B model's prefill ~3%.
        const count = async (content: string) => (await (await fetch(`${server.url}/tokenize`, {
            method: "POST", body: JSON.stringify({content, add_special: true})
        })).json() as {tokens: number[]}).tokens.length;
        const promptFor = async (tag: string) => {
            let text = tag;
            let tokens = await count(text);
            for (let index = 0; tokens < options.promptTokens; index++) {
                let grown = false;
                for (const word of [words[index % words.length]!, ...words]) {
                    const longer = `${text} ${word}`;
                    const longerTokens = await count(longer);
                    if (longerTokens > options.promptTokens) continue;
                    [text, tokens, grown] = [longer, longerTokens, true];
                    break;
                }
                if (!grown) break;
            }
            return {text, tokens};
        };
        for (let run = 0; run < (options.serverRuns ?? options.runs); run++) {
            const prompt = await promptFor(`p${run}`);
            promptTokens = prompt.tokens;
            if (existsSync(llamaBenchPath)) {
                const once = await runLlamaBenchOnce(options, props.runtime.threads, props.runtime.flash_attention, env, prompt.tokens);
                interleaved.decode.push(once.decodeTokensPerSecond);
                interleaved.prefill.push(once.prefillTokensPerSecond);
            }
            // Each figure on both servers back to back, so drift on this shared machine hits both alike.
            await each(async (target) => {
                const threadsBefore = threadCpuMicros(target.pid);
                const clientBefore = process.cpuUsage();
                const sample = await decodeOverSse(target.url, {prompt: `${run} Once upon a time`, maxTokens: options.tokens});
                const client = process.cpuUsage(clientBefore);
                const threads = [...threadCpuMicros(target.pid)].map(([thread, micros]) => micros - (threadsBefore.get(thread) ?? 0)).sort((a, b) => b - a);
                target.decode.push(sample.tokensPerSecond);
                target.ttft.push(sample.ttftMs);
                if (threads.length > 0 && sample.tokens > 0) {
                    target.cpu.decodeThread.push(threads[0]! / sample.tokens);
                    target.cpu.otherThreads.push(threads.slice(1).reduce((sum, micros) => sum + micros, 0) / sample.tokens);
                    target.cpu.client.push((client.user + client.system) / sample.tokens);
                }
            });
            await each(async (target) => {
                const sample = await decodeOverSse(target.url, {prompt: prompt.text, maxTokens: 1});
                target.prefill.push(prompt.tokens / (sample.ttftMs / 1000));
            });
            await each(async (target) => {
                const streamsStart = performance.now();
                const samples = await Promise.all(Array.from({length: options.streams}, (_, index) =>
                    decodeOverSse(target.url, {prompt: `${run}-${index} Once upon a time`, maxTokens: options.tokens})));
                target.streams.push(samples.reduce((sum, sample) => sum + sample.tokens, 0) / ((performance.now() - streamsStart) / 1000));
            });
        }
    } finally {
        await server.stop();
        await reference?.stop();
    }
    const figures = (target: typeof measured[number]): ServerFigures => ({
        decodeTokensPerSecond: median(target.decode), prefillTokensPerSecond: median(target.prefill), streams: options.streams,
        streamsTokensPerSecond: median(target.streams), ttftMs: median(target.ttft),
        ...target.cpu.decodeThread.length === 0 ? {} : {
            cpuPerToken: {decodeThreadUs: median(target.cpu.decodeThread), otherThreadsUs: median(target.cpu.otherThreads), clientUs: median(target.cpu.client)}
        }
    });
    const ratio = (values: number[], of: number[]) => median(values.map((value, index) => value / of[index]!));
    return {
        model: path.basename(options.model),
        threads: options.threads,
        ...(options.bars == null ? {} : {bars: options.bars}),
        ...(usable == null
            ? {skipped: record == null ? "no local build recorded (npx tsx scripts/build-backend.ts cpu-native)" : `the recorded build "${record.preset}" is not a CPU build`}
            : {native: {preset: usable.preset, cmakeOptions: usable.cmakeOptions, builtAt: usable.builtAt}}),
        rows,
        serverRuns: options.serverRuns ?? options.runs,
        ...(llamaBench == null ? {} : {llamaBench}),
        ...(interleaved.decode.length === 0 ? {} : {llamaBenchInterleaved: {
            decodeTokensPerSecond: median(interleaved.decode), prefillTokensPerSecond: median(interleaved.prefill), promptTokens,
            decodeRatio: ratio(measured[0]!.decode, interleaved.decode), prefillRatio: ratio(measured[0]!.prefill, interleaved.prefill)
        }}),
        server: {
            binary: usable == null ? "prebuilt" : "native", policy: usable == null ? "-" : policy.policy,
            threads: props.runtime.threads, flashAttention: props.runtime.flash_attention, settingsReason: props.runtime.threads_reason,
            ...props.runtime.decode_loop == null ? {} : {decodeLoop: props.runtime.decode_loop.kind},
            ...figures(measured[0]!)
        },
        ...(measured[1] == null ? {} : {llamaServer: measured[1].failed != null ? {failed: measured[1].failed} : figures(measured[1])})
    };
}

/** One llama-bench run (after its own warm-up) at the server's settings and wait policy, between the server's runs. */
async function runLlamaBenchOnce(options: NativeBenchOptions, threads: number, flashAttention: boolean, env: Record<string, string>, promptTokens: number) {
    const {stdout} = await promisify(execFile)(llamaBenchPath, [
        "-m", options.model, "-t", String(threads), "-p", String(promptTokens), "-n", String(options.tokens),
        "-r", "1", "-fa", flashAttention ? "on" : "off", "-o", "json"
    ], {maxBuffer: 1 << 24, env: {...process.env, ...env}});
    const tests = JSON.parse(stdout) as {n_prompt: number; n_gen: number; avg_ts: number}[];
    return {
        decodeTokensPerSecond: tests.find((test) => test.n_gen > 0 && test.n_prompt === 0)?.avg_ts ?? 0,
        prefillTokensPerSecond: tests.find((test) => test.n_prompt > 0 && test.n_gen === 0)?.avg_ts ?? 0
    };
}

/** llama-bench's pp and tg tests at the same thread count: llama.cpp with no Node in the way. */
async function runLlamaBench(options: NativeBenchOptions, log: (message: string) => void) {
    log("llama.cpp's llama-bench");
    const {stdout} = await promisify(execFile)(llamaBenchPath, [
        "-m", options.model, "-t", String(options.threads), "-p", String(options.promptTokens), "-n", String(options.tokens),
        "-r", String(Math.max(3, options.runs)), "-fa", "off,on", "-o", "json"
    ], {maxBuffer: 1 << 24});
    const tests = JSON.parse(stdout) as {n_prompt: number; n_gen: number; avg_ts: number; flash_attn: unknown; build_commit: string; build_number: number}[];
    const flashOn = (value: unknown) => value === true || value === 1 || value === "on" || value === "enabled";
    const byFlashAttention = [false, true].map((flashAttention) => {
        const mine = tests.filter((test) => flashOn(test.flash_attn) === flashAttention);
        return {
            flashAttention,
            decodeTokensPerSecond: mine.find((test) => test.n_gen > 0 && test.n_prompt === 0)?.avg_ts ?? 0,
            prefillTokensPerSecond: mine.find((test) => test.n_prompt > 0 && test.n_gen === 0)?.avg_ts ?? 0
        };
    });
    return {
        decodeTokensPerSecond: Math.max(...byFlashAttention.map((entry) => entry.decodeTokensPerSecond)),
        prefillTokensPerSecond: Math.max(...byFlashAttention.map((entry) => entry.prefillTokensPerSecond)),
        build: `${tests[0]?.build_commit ?? "?"} (${tests[0]?.build_number ?? "?"})`,
        byFlashAttention
    };
}

const f0 = (value: number | undefined) => value == null ? "" : value.toFixed(0);
const pct = (value: number, of: number) => `${(100 * value / of).toFixed(0)}%`;

function renderLlamaServer(server: ServerFigures, reference: ServerFigures) {
    return `
| same settings, same SSE client, interleaved | edge-llm | llama-server | edge-llm / llama-server |
| --- | ---: | ---: | ---: |
| decode, one stream, tok/s | ${f0(server.decodeTokensPerSecond)} | ${f0(reference.decodeTokensPerSecond)} | ${pct(server.decodeTokensPerSecond, reference.decodeTokensPerSecond)} |
| time to first token, short prompt, ms | ${server.ttftMs.toFixed(1)} | ${reference.ttftMs.toFixed(1)} | ${pct(server.ttftMs, reference.ttftMs)} |
| prefill, tok/s | ${f0(server.prefillTokensPerSecond)} | ${f0(reference.prefillTokensPerSecond)} | ${pct(server.prefillTokensPerSecond, reference.prefillTokensPerSecond)} |
| ${server.streams} streams, aggregate tok/s | ${f0(server.streamsTokensPerSecond)} | ${f0(reference.streamsTokensPerSecond)} | ${pct(server.streamsTokensPerSecond, reference.streamsTokensPerSecond)} |
`;
}

function renderInterleavedLlamaBench(server: ServerFigures, bench: NonNullable<NativeBenchReport["llamaBenchInterleaved"]>, tokens: number) {
    // Reports written before the per-run ratio was recorded have none.
    const runRatio = (value: number | undefined) => value == null ? "" : `${(100 * value).toFixed(0)}%`;
    return `
| llama-bench at the server's settings, one run between each of the server's | edge-llm over SSE | llama-bench | ratio of the medians | median of the per-run ratios |
| --- | ---: | ---: | ---: | ---: |
| decode, tok/s (tg${tokens}) | ${f0(server.decodeTokensPerSecond)} | ${f0(bench.decodeTokensPerSecond)} | ${pct(server.decodeTokensPerSecond, bench.decodeTokensPerSecond)} | ${runRatio(bench.decodeRatio)} |
| prefill, tok/s (pp${bench.promptTokens}; the server's includes HTTP and tokenizing) | ${f0(server.prefillTokensPerSecond)} | ${f0(bench.prefillTokensPerSecond)} | ${pct(server.prefillTokensPerSecond, bench.prefillTokensPerSecond)} | ${runRatio(bench.prefillRatio)} |
`;
}

function renderCpuPerToken(server: ServerFigures, reference: ServerFigures | undefined, threads: number) {
    if (server.cpuPerToken == null) return "";
    const row = (name: string, figures: ServerFigures["cpuPerToken"]) => figures == null ? "" :
        `| ${name} | ${figures.decodeThreadUs.toFixed(0)} | ${figures.otherThreadsUs.toFixed(1)} | ${figures.clientUs.toFixed(1)} |\n`;
    return `
CPU time per token of one stream's decode (medians; the client is the bench's SSE reader${threads > 1 ? `; at ${threads} threads the decode's other ${threads - 1} thread(s) count among the other threads` : ""}):

| server | decoding thread, µs | the server's other threads, µs | client, µs |
| --- | ---: | ---: | ---: |
${row("edge-llm", server.cpuPerToken)}${row("llama-server", reference?.cpuPerToken)}`;
}

export function renderNative(report: NativeBenchReport, runs: number, tokens: number): string {
    const rows = report.rows.map((row) =>
        `| ${row.binary} | ${row.pool} | ${row.binary === "prebuilt" ? "(ggml threads)" : row.policy}${Object.keys(row.env).length > 0 ? ` \`${Object.entries(row.env).map(([key, value]) => `${key}=${value}`).join(" ")}\`` : ""} | ${row.flashAttention ? "on" : "off"} | ` +
        `${f0(row.decodeTokensPerSecond)} | ${f0(row.prefillTokensPerSecond)} | ${f0(row.streamsTokensPerSecond)} | ${row.cpuMsPerToken.toFixed(1)} | ${row.idleCpuPercent.toFixed(1)}% |`);
    const server = report.server;
    return `
## Binary and OpenMP wait policy

scripts/bench/native.ts on \`${report.model}\`, ${report.threads} threads, medians of ${runs} runs of ${tokens} tokens, each
configuration in its own process (libgomp reads its wait policy once, at load). "native" is the
local build scripts/build-backend.ts cpu-native made from node-llama-cpp's bundled llama.cpp
${report.native == null ? `— **not measured: ${report.skipped}**` : `(${Object.entries(report.native.cmakeOptions).map(([key, value]) => `${key}=${value}`).join(", ")}, built ${report.native.builtAt.slice(0, 10)})`}.
CPU ms per token counts every thread of the process; idle CPU is measured over the 0.5 s after a decode.

| binary | libuv pool threads | wait policy | flash attention | decode tok/s | prefill tok/s | ${report.server.streams} streams tok/s | CPU ms / token | idle CPU |
| --- | ---: | --- | :---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

${report.llamaBench == null ? "llama.cpp's llama-bench: not built here (npx tsx scripts/build-llama-tools.ts builds it from the bundled source)."
        : `llama.cpp's own llama-bench, built from the same bundled source (native, OpenMP, build ${report.llamaBench.build}), in the same run, the faster of flash attention off and on: **${f0(report.llamaBench.decodeTokensPerSecond)} tok/s** decode (tg${tokens}), **${f0(report.llamaBench.prefillTokensPerSecond)} tok/s** prefill (pp128) (off / on: ${(report.llamaBench.byFlashAttention ?? []).map((entry) => `${f0(entry.decodeTokensPerSecond)} / `).join("").replace(/ \/ $/, "")} decode, ${(report.llamaBench.byFlashAttention ?? []).map((entry) => f0(entry.prefillTokensPerSecond)).join(" / ")} prefill).`}

edge-llm's server as \`serve\` runs it here (${server.binary} binary${server.binary === "native" ? `, wait policy ${server.policy}, one libuv pool thread` : ""}, ${server.threads ?? report.threads} thread(s), flash attention ${server.flashAttention ? "on" : "off"}${server.decodeLoop == null ? "" : `, ${server.decodeLoop === "native" ? "native decode loop" : "node-llama-cpp's decode loop"}`}${server.settingsReason == null ? "" : `: ${server.settingsReason}`}), over SSE:
medians of ${report.serverRuns ?? runs} runs: **${f0(server.decodeTokensPerSecond)} tok/s** decode (one stream)${report.llamaBench == null ? "" : `, ${pct(server.decodeTokensPerSecond, report.llamaBench.decodeTokensPerSecond)} of llama-bench's separate run`}, **${f0(server.prefillTokensPerSecond)} tok/s** prefill${report.llamaBenchInterleaved == null ? "" : ` (${report.llamaBenchInterleaved.promptTokens}-token prompts)`},
**${f0(server.streamsTokensPerSecond)} tok/s** aggregate over ${server.streams} concurrent streams${server.ttftMs == null ? "" : `, time to first token ${server.ttftMs.toFixed(1)} ms`}.
${report.llamaBenchInterleaved == null ? "" : renderInterleavedLlamaBench(server, report.llamaBenchInterleaved, tokens)}${renderCpuPerToken(server, report.llamaServer != null && !("failed" in report.llamaServer) ? report.llamaServer : undefined, server.threads ?? report.threads)}
${report.llamaServer == null ? "llama.cpp's llama-server: not built here (scripts/build-llama-tools.ts builds it)."
        : "failed" in report.llamaServer ? `llama.cpp's llama-server, same settings: not compared — ${report.llamaServer.failed}.` : renderLlamaServer(server, report.llamaServer)}
${report.bars == null ? "" : `${report.bars}\n`}`;
}
