/**
 * One side of the local-build comparison (src/backends/llama-cpp/build-comparison.ts): loads a
 * model with the prebuilt binary, or with the local build named by `--record` (its JSON), the way
 * `serve` does (autotuned threads and flash attention, cached in `--tuning`), prints
 * `{"build", "tuned"}` as one JSON line, then times one request per `time` line on stdin — prefill
 * of a 64-token prompt, 64 tokens decoded through the decode loop a lone stream uses — answering
 * `{"prefillTokensPerSecond", "decodeTokensPerSecond"}`, until stdin ends. The parent alternates
 * two such processes request by request, so the host's slow and fast phases hit both alike.
 *
 *   UV_THREADPOOL_SIZE=1 npx tsx scripts/measure-binary.ts --model M.gguf --tuning /tmp/t.json [--record '{…}']
 */
import {createInterface} from "node:readline";
import {readFile} from "node:fs/promises";
import {parseArgs} from "node:util";
import type {Token} from "node-llama-cpp";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {CPU_BATCH_SIZE} from "../src/backends/llama-cpp/batch-size.js";
import type {NativeBuildRecord} from "../src/backends/llama-cpp/native-build.js";
import {loadDecodeLoopAddon} from "../src/backends/llama-cpp/native-loop/addon.js";
import {NativeDecodeLoop} from "../src/backends/llama-cpp/native-loop/decode-loop.js";
import {decodeRate, type TunedThreads} from "../src/backends/llama-cpp/thread-tuning.js";
import {chooseWaitPolicy} from "../src/backends/llama-cpp/wait-policy.js";

const PROMPT_TOKENS = 64;
const ANSWER_TOKENS = 64;

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

    const model = await backend.llama.loadModel({modelPath: values.model});
    const context = await model.createContext({
        contextSize: PROMPT_TOKENS + ANSWER_TOKENS + 16, sequences: 1, batchSize: CPU_BATCH_SIZE, threads: {ideal: threads, min: threads}, flashAttention
    });
    const {addon} = await loadDecodeLoopAddon();
    const loop = addon == null ? undefined : NativeDecodeLoop.attach(addon, context).loop;
    const sequence = context.getSequence();
    let prompt: Token[] = [];
    while (prompt.length < PROMPT_TOKENS) prompt = [...prompt, ...model.tokenize("Once upon a time, there was a little girl who lived in a village near the forest. ")];
    prompt = prompt.slice(0, PROMPT_TOKENS);

    process.stdout.write(`${JSON.stringify({build: {type: backend.build.type, reason: backend.build.reason}, tuned: entries[0]})}\n`);
    for await (const line of createInterface({input: process.stdin})) {
        if (line.trim() !== "time") continue;
        await sequence.clearHistory();
        const started = performance.now();
        await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
        const prefillTokensPerSecond = (PROMPT_TOKENS - 1) / ((performance.now() - started) / 1000);
        const decodeTokensPerSecond = await decodeRate(sequence, prompt.slice(-1), ANSWER_TOKENS, loop);
        process.stdout.write(`${JSON.stringify({prefillTokensPerSecond, decodeTokensPerSecond})}\n`);
    }
    await context.dispose();
    await model.dispose();
} finally {
    await backend.dispose();
}
