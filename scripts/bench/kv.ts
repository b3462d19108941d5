/**
 * KV cache benchmarks: what prefix reuse, the disk tier and session persistence do to time to
 * first token, measured against the server in its own process with a streaming client.
 */
import {execFile} from "node:child_process";
import {mkdtemp, rm} from "node:fs/promises";
import {promisify} from "node:util";
import {fileURLToPath} from "node:url";
import os from "node:os";
import path from "node:path";
import {median} from "./report.js";
import {sseChunks} from "./clients.js";
import {startBenchServer, type BenchServer} from "./server.js";

interface Message {role: "system" | "user" | "assistant"; content: string}
interface Turn {ttftMs: number; text: string; promptTokens: number; cachedTokens: number}

export interface KvBenchOptions {
    model: string;
    threads: number;
    /** Repetitions per measured figure. */
    runs: number;
    /** Conversations in the interleaving test (on `parallel` sequences). */
    conversations: number;
    parallel: number;
    turns: number;
}

export interface KvBenchReport {
    sharedPrefixTokens: number;
    sharedPrefix: {coldTtftMs: number; warmTtftMs: number; speedup: number};
    interleaved: {conversations: number; sequences: number; turns: number; coldTtftMs: number; warmTtftMs: number; speedup: number; warmWithoutDiskTtftMs: number; speedupWithoutDisk: number};
    restore: {coldTtftMs: number; restoredTtftMs: number; speedup: number; afterRestartTtftMs: number; speedupAfterRestart: number};
}

/** About 800 tokens of the test model's vocabulary; `tag` at the front makes it unique. */
const longSystem = (tag: string) => ({role: "system" as const, content: `${tag}. ` + "Tell tales of the sea, the wind and the little fish. ".repeat(31)});

async function turn(server: BenchServer, messages: Message[], maxTokens = 8): Promise<Turn> {
    const start = performance.now();
    const response = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({model: "bench", messages, max_tokens: maxTokens, temperature: 0, stream: true, stream_options: {include_usage: true}})
    });
    let ttftMs = 0;
    let text = "";
    let usage = {prompt_tokens: 0, prompt_tokens_details: {cached_tokens: 0}};
    for await (const {chunk, at} of sseChunks(response)) {
        const content = chunk.choices[0]?.delta?.content;
        if (content && ttftMs === 0) ttftMs = at - start;
        text += content ?? "";
        if (chunk.usage != null) usage = chunk.usage;
    }
    return {ttftMs, text, promptTokens: usage.prompt_tokens, cachedTokens: usage.prompt_tokens_details.cached_tokens};
}

export interface KvQuantRow {
    model: string;
    type: string;
    flashAttention: boolean;
    error?: string;
    stateBytesPerToken?: number;
    decodeTokensPerSecond?: number;
    matchingGreedyTokens?: number;
}

/** Runs scripts/bench/kv-quant.ts (it loads models itself) and flattens its rows. */
export async function runKvQuantBench(runs: number): Promise<KvQuantRow[]> {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), "kv-quant.ts");
    const {stdout} = await promisify(execFile)(process.execPath, ["--import", "tsx", script, "--runs", String(runs)], {maxBuffer: 1 << 24});
    const report = JSON.parse(stdout) as {models: {model: string; results: Omit<KvQuantRow, "model">[]}[]};
    return report.models.flatMap(({model, results}) => results.map((result) => ({
        model, type: result.type, flashAttention: result.flashAttention, error: result.error,
        stateBytesPerToken: result.stateBytesPerToken, decodeTokensPerSecond: result.decodeTokensPerSecond,
        matchingGreedyTokens: result.matchingGreedyTokens
    })));
}

const ratio = (a: number, b: number) => Math.round((a / b) * 10) / 10;
const round = (value: number) => Math.round(value * 100) / 100;

async function withServer<T>(options: Parameters<typeof startBenchServer>[0], use: (server: BenchServer) => Promise<T>): Promise<T> {
    const server = await startBenchServer(options);
    try {
        return await use(server);
    } finally {
        await server.stop();
    }
}

export async function runKvBench(options: KvBenchOptions): Promise<KvBenchReport> {
    const spillRoot = await mkdtemp(path.join(os.tmpdir(), "edge-llm-bench-kv-"));
    const base = {model: options.model, threads: options.threads, contextSize: 2048};
    try {
        // 1. One shared ~800-token system prompt, a new question each time; cold = a unique prompt.
        let sharedPrefixTokens = 0;
        const sharedPrefix = await withServer({...base, parallel: 1}, async (server) => {
            const cold: number[] = [];
            const warm: number[] = [];
            await turn(server, [longSystem("warm-up"), {role: "user", content: "Hi"}]);
            for (let run = 0; run < options.runs; run++) {
                const first = await turn(server, [longSystem(`Run ${run}`), {role: "user", content: `Question ${run}a`}]);
                cold.push(first.ttftMs);
                const second = await turn(server, [longSystem(`Run ${run}`), {role: "user", content: `Question ${run}b`}]);
                warm.push(second.ttftMs);
                sharedPrefixTokens = second.cachedTokens;
            }
            return {coldTtftMs: round(median(cold)), warmTtftMs: round(median(warm)), speedup: ratio(median(cold), median(warm))};
        });

        // 2. Many conversations taking turns on few sequences, with and without the disk tier.
        const interleave = async (spill: boolean) => withServer(
            {...base, parallel: options.parallel, kv: spill ? {spillDir: path.join(spillRoot, "interleave")} : {}},
            async (server) => {
                const histories = Array.from({length: options.conversations}, (_, n) => [longSystem(`Conversation ${n}`)] as Message[]);
                const cold: number[] = [];
                const warm: number[] = [];
                for (let round = 0; round < options.turns; round++)
                    for (const [n, history] of histories.entries()) {
                        history.push({role: "user", content: `Part ${round}: what did fish ${n} see?`});
                        const result = await turn(server, history, 16);
                        (round === 0 ? cold : warm).push(result.ttftMs);
                        history.push({role: "assistant", content: result.text});
                    }
                return {cold: median(cold), warm: median(warm)};
            }
        );
        const withDisk = await interleave(true);
        const withoutDisk = await interleave(false);

        // 3. One conversation restored from disk after eviction, and after a server restart.
        const restoreDir = path.join(spillRoot, "restore");
        const restoreOptions = {...base, parallel: 1, kv: {spillDir: restoreDir, persistOnShutdown: true}};
        const cold: number[] = [];
        const restored: number[] = [];
        const afterRestart: number[] = [];
        for (let run = 0; run < options.runs; run++) {
            const history: Message[] = [longSystem(`Restore ${run}`), {role: "user", content: "Part 0"}];
            await withServer(restoreOptions, async (server) => {
                const first = await turn(server, history);
                cold.push(first.ttftMs);
                history.push({role: "assistant", content: first.text}, {role: "user", content: "Part 1"});
                await turn(server, [longSystem(`Evictor ${run}`), {role: "user", content: "Hi"}]);
                const back = await turn(server, history);
                restored.push(back.ttftMs);
                history.push({role: "assistant", content: back.text}, {role: "user", content: "Part 2"});
            });
            await withServer(restoreOptions, async (server) => {
                afterRestart.push((await turn(server, history)).ttftMs);
            });
        }

        return {
            sharedPrefixTokens,
            sharedPrefix,
            interleaved: {
                conversations: options.conversations, sequences: options.parallel, turns: options.turns,
                coldTtftMs: round(withDisk.cold), warmTtftMs: round(withDisk.warm), speedup: ratio(withDisk.cold, withDisk.warm),
                warmWithoutDiskTtftMs: round(withoutDisk.warm), speedupWithoutDisk: ratio(withoutDisk.cold, withoutDisk.warm)
            },
            restore: {
                coldTtftMs: round(median(cold)), restoredTtftMs: round(median(restored)), speedup: ratio(median(cold), median(restored)),
                afterRestartTtftMs: round(median(afterRestart)), speedupAfterRestart: ratio(median(cold), median(afterRestart))
            }
        };
    } finally {
        await rm(spillRoot, {recursive: true, force: true});
    }
}
