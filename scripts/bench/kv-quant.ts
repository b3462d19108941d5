/**
 * KV cache quantization: memory per token, decode speed and greedy agreement with f16, for
 * f16, q8_0 and q4_0 caches. Prints one JSON object.
 *
 *   npx tsx scripts/bench/kv-quant.ts                 # stories260K and its heads-of-32 variant
 *   npx tsx scripts/bench/kv-quant.ts --model path/to.gguf --runs 5 --tokens 256 --threads 1
 *
 * stories260K's heads have 8 values, too few for the 32-value quantization blocks, so its q8_0
 * and q4_0 rows report the load error; the same weights regrouped into heads of 32
 * (test/helpers/regrouped-model.ts) load with every type.
 */
import {mkdtemp, rm, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {parseArgs} from "node:util";
import {getLlama, type Llama, type LlamaModel, type Token} from "node-llama-cpp";
import type {KvCacheType} from "../../src/backends/backend.js";
import {kvBytesPerToken, kvCacheContextOptions, readKvShape} from "../../src/backends/llama-cpp/kv-cache.js";
import {writeRegroupedModel} from "../../test/helpers/regrouped-model.js";
import {median} from "./report.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const {values: args} = parseArgs({
    options: {
        model: {type: "string"},
        runs: {type: "string", default: "5"},
        tokens: {type: "string", default: "256"},
        threads: {type: "string", default: "1"},
        "context-size": {type: "string", default: "2048"}
    }
});
const defaultModel = path.resolve(root, process.env.EDGE_LLM_TEST_MODEL ?? "../shared/models/stories260K.gguf");
const modelPath = path.resolve(args.model ?? defaultModel);
const runs = Number(args.runs);
const tokens = Number(args.tokens);
const threads = Number(args.threads);
const contextSize = Number(args["context-size"]);
const COMPARED_TOKENS = 64;
/** Two fill levels: the slope between them is the state's cost per token, without fixed overhead. */
const FILL = [256, 1024] as const;
/** f16 with flash attention is the control: quantized caches need it, so it separates the two effects. */
const VARIANTS: {type: KvCacheType; flashAttention?: true}[] = [{type: "f16"}, {type: "f16", flashAttention: true}, {type: "q8_0"}, {type: "q4_0"}];
const PROMPT = "Once upon a time";

interface TypeResult {
    type: KvCacheType;
    flashAttention: boolean;
    error?: string;
    /** From GGUF metadata: layers × KV heads × (key + value length) × bytes per element. */
    estimatedBytesPerToken?: number;
    /** llama.cpp's state size (the KV cells in use), per token. */
    stateBytesPerToken?: number;
    /** `saveStateToFile` size, per token. */
    stateFileBytesPerToken?: number;
    decodeTokensPerSecond?: number;
    decodeRuns?: number[];
    /** Leading greedy tokens equal to f16's (of COMPARED_TOKENS). */
    matchingGreedyTokens?: number;
    greedyMatchesF16?: boolean;
}

async function measure(model: LlamaModel, {type, flashAttention}: typeof VARIANTS[number], reference?: number[]): Promise<{result: TypeResult; greedy?: number[]}> {
    const shape = readKvShape(model.fileInfo.metadata);
    const result: TypeResult = {type, flashAttention: flashAttention ?? type !== "f16", estimatedBytesPerToken: shape == null ? undefined : kvBytesPerToken(shape, type)};
    let context;
    try {
        const kvOptions = kvCacheContextOptions(type, shape);
        context = await model.createContext({contextSize, sequences: 1, threads: {ideal: threads, min: 1}, ...kvOptions, flashAttention: flashAttention ?? kvOptions.flashAttention});
    } catch (error) {
        return {result: {...result, error: (error as Error).message}};
    }
    const sequence = context.getSequence();
    const prompt = model.tokenize(PROMPT);
    if (model.tokens.bos != null) prompt.unshift(model.tokens.bos);
    try {
        const greedy = await generate(sequence, prompt, COMPARED_TOKENS);
        if (reference != null) {
            let same = 0;
            while (same < COMPARED_TOKENS && greedy[same] === reference[same]) same++;
            result.matchingGreedyTokens = same;
            result.greedyMatchesF16 = same === COMPARED_TOKENS;
        }

        result.decodeRuns = [];
        for (let run = 0; run < runs; run++) {
            await sequence.clearHistory();
            const start = performance.now();
            await generate(sequence, prompt, tokens);
            result.decodeRuns.push(Math.round(tokens / ((performance.now() - start) / 1000)));
        }
        result.decodeTokensPerSecond = median(result.decodeRuns);

        const states: {state: number; file: number}[] = [];
        const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-kv-"));
        try {
            for (const fill of FILL) {
                await sequence.clearHistory();
                await sequence.evaluateWithoutGeneratingNewTokens(Array.from({length: fill}, (_, index) => prompt[index % prompt.length]!) as Token[]);
                const file = path.join(dir, `${fill}.bin`);
                await sequence.saveStateToFile(file);
                states.push({state: context.stateSize, file: (await stat(file)).size});
            }
        } finally {
            await rm(dir, {recursive: true, force: true});
        }
        const span = FILL[1] - FILL[0];
        result.stateBytesPerToken = Math.round((states[1]!.state - states[0]!.state) / span);
        result.stateFileBytesPerToken = Math.round((states[1]!.file - states[0]!.file) / span);
        return {result, greedy};
    } finally {
        sequence.dispose();
        await context.dispose();
    }
}

async function generate(sequence: ReturnType<Awaited<ReturnType<LlamaModel["createContext"]>>["getSequence"]>, prompt: Token[], count: number) {
    const out: number[] = [];
    for await (const token of sequence.evaluate(prompt, {temperature: 0})) {
        out.push(token);
        if (out.length >= count) break;
    }
    return out;
}

async function benchModel(llama: Llama, file: string, label: string) {
    const model = await llama.loadModel({modelPath: file});
    try {
        const results: TypeResult[] = [];
        let reference: number[] | undefined;
        for (const variant of VARIANTS) {
            const {result, greedy} = await measure(model, variant, reference);
            reference ??= greedy;
            results.push(result);
        }
        return {model: label, path: file, shape: readKvShape(model.fileInfo.metadata), results};
    } finally {
        await model.dispose();
    }
}

const llama = await getLlama({gpu: false, build: "never", maxThreads: threads, logLevel: "error" as never});
const report = {
    date: new Date().toISOString(),
    machine: {cpu: os.cpus()[0]?.model, cores: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, node: process.version},
    contextSize,
    threads,
    decode: {runs, tokens, prompt: PROMPT},
    models: [] as Awaited<ReturnType<typeof benchModel>>[]
};
report.models.push(await benchModel(llama, modelPath, path.basename(modelPath)));
if (modelPath === defaultModel) {
    const regrouped = await writeRegroupedModel(modelPath);
    try {
        report.models.push(await benchModel(llama, regrouped, "stories260K regrouped: 2 heads / 1 KV head of 32"));
    } finally {
        await rm(regrouped, {force: true});
    }
}
await llama.dispose();
console.log(JSON.stringify(report, null, 2));
