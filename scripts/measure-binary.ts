/**
 * One side of the local-build comparison (src/backends/llama-cpp/build-comparison.ts): loads a
 * model with the prebuilt binary, or with the local build named by `--record` (its JSON), the way
 * `serve` does (autotuned threads and flash attention, cached in `--tuning`), then times requests
 * at those settings — prefill of a 64-token prompt, 64 tokens decoded through the decode loop a
 * lone stream uses — for at least 3 rounds and 2 s, and prints the binary and the medians as one
 * JSON line. Autotuning's own few tokens are too few to compare binaries on a small model.
 *
 *   UV_THREADPOOL_SIZE=1 npx tsx scripts/measure-binary.ts --model M.gguf --tuning /tmp/t.json [--record '{…}']
 */
import {readFile} from "node:fs/promises";
import {parseArgs} from "node:util";
import type {Token} from "node-llama-cpp";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {CPU_BATCH_SIZE} from "../src/backends/llama-cpp/batch-size.js";
import {median} from "../src/backends/llama-cpp/build-comparison.js";
import type {BinaryScore, NativeBuildRecord} from "../src/backends/llama-cpp/native-build.js";
import {loadDecodeLoopAddon} from "../src/backends/llama-cpp/native-loop/addon.js";
import {NativeDecodeLoop} from "../src/backends/llama-cpp/native-loop/decode-loop.js";
import {decodeRate, type TunedThreads} from "../src/backends/llama-cpp/thread-tuning.js";
import {chooseWaitPolicy} from "../src/backends/llama-cpp/wait-policy.js";

const PROMPT_TOKENS = 64;
const ANSWER_TOKENS = 64;
const MIN_ROUNDS = 3;
const MAX_ROUNDS = 100;
const MIN_MS = 2000;

const {values} = parseArgs({options: {model: {type: "string"}, tuning: {type: "string"}, record: {type: "string"}}});
if (values.model == null || values.tuning == null) {
    process.stderr.write("usage: measure-binary.ts --model FILE --tuning FILE [--record JSON]\n");
    process.exit(2);
}
const record = values.record == null ? undefined : JSON.parse(values.record) as NativeBuildRecord;
const backend = await LlamaCppBackend.create({
    gpu: false,
    nativeBuild: record,
    waitPolicy: chooseWaitPolicy({setting: "auto"}),
    logger: (level, message) => { if (level === "error" || level === "warn") process.stderr.write(`${message}\n`); }
});
try {
    const served = await backend.loadModel({path: values.model, id: "compare", parallel: 1, contextSize: 512, threadTuning: {cacheFile: values.tuning}});
    const {threads, flashAttention} = served.description;
    await served.dispose();
    const entries = Object.values(JSON.parse(await readFile(values.tuning, "utf8")) as Record<string, TunedThreads>);
    if (entries.length !== 1) throw new Error(`expected one tuning result, found ${entries.length}`);
    const score = await timeRequests(threads, flashAttention);
    process.stdout.write(`${JSON.stringify({build: {type: backend.build.type, reason: backend.build.reason}, tuned: entries[0], score})}\n`);
} finally {
    await backend.dispose();
}

async function timeRequests(threads: number, flashAttention: boolean): Promise<BinaryScore> {
    const model = await backend.llama.loadModel({modelPath: values.model!});
    const context = await model.createContext({
        contextSize: PROMPT_TOKENS + ANSWER_TOKENS + 16, sequences: 1, batchSize: CPU_BATCH_SIZE, threads: {ideal: threads, min: threads}, flashAttention
    });
    try {
        const {addon} = await loadDecodeLoopAddon();
        const loop = addon == null ? undefined : NativeDecodeLoop.attach(addon, context).loop;
        const sequence = context.getSequence();
        let prompt: Token[] = [];
        while (prompt.length < PROMPT_TOKENS) prompt = [...prompt, ...model.tokenize("Once upon a time, there was a little girl who lived in a village near the forest. ")];
        prompt = prompt.slice(0, PROMPT_TOKENS);
        const prefill: number[] = [];
        const decode: number[] = [];
        const started = performance.now();
        while (prefill.length < MAX_ROUNDS && (prefill.length < MIN_ROUNDS || performance.now() - started < MIN_MS)) {
            await sequence.clearHistory();
            const before = performance.now();
            await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
            prefill.push((PROMPT_TOKENS - 1) / ((performance.now() - before) / 1000));
            decode.push(await decodeRate(sequence, prompt.slice(-1), ANSWER_TOKENS, loop));
        }
        return {threads, flashAttention, decodeTokensPerSecond: Math.round(median(decode)), prefillTokensPerSecond: Math.round(median(prefill))};
    } finally {
        await context.dispose();
        await model.dispose();
    }
}
