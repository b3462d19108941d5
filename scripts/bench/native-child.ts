/**
 * One binary under one OpenMP wait policy, in its own process (libgomp reads its environment
 * once, at load): raw node-llama-cpp decode and prefill speed, CPU time per token, and CPU burnt
 * while idle. Takes one JSON argument (`NativeChildOptions`), prints one JSON line (`NativeChildResult`).
 */
import {getLlama, type Token} from "node-llama-cpp";

export interface NativeChildOptions {
    model: string;
    /** Local build options (cmakeOptions of the record); undefined: the prebuilt binary. */
    cmakeOptions?: Record<string, string>;
    threads: number;
    tokens: number;
    promptTokens: number;
    runs: number;
    /** Sequences decoding together for the aggregate figure (0: skip). */
    streams: number;
    flashAttention?: boolean;
}

export interface NativeChildResult {
    buildType: string;
    decodeTokensPerSecond: number;
    prefillTokensPerSecond: number;
    /** CPU time of the whole process (all threads) per generated token. */
    cpuMsPerToken: number;
    /** CPU time per second of wall time while nothing is generating, measured right after a decode. */
    idleCpuPercent: number;
    streamsTokensPerSecond?: number;
}

const options = JSON.parse(process.argv[2]!) as NativeChildOptions;
const llama = await getLlama({
    gpu: false, build: "never", maxThreads: options.threads, logLevel: "error" as never,
    ...(options.cmakeOptions == null ? {} : {cmakeOptions: options.cmakeOptions, usePrebuiltBinaries: false})
});
const model = await llama.loadModel({modelPath: options.model});
const sequences = Math.max(1, options.streams);
const context = await model.createContext({
    contextSize: Math.max(512, options.promptTokens + options.tokens + 16) * sequences, sequences,
    threads: {ideal: options.threads, min: 1}, flashAttention: options.flashAttention === true
});
const words = ["the", "little", "dog", "went", "to", "park", "and", "saw", "a", "big", "tree"];
const promptOf = (salt: number) => {
    const tokens = model.tokenize(`${salt} ` + Array.from({length: options.promptTokens}, (_, index) => words[index % words.length]).join(" "));
    return tokens.slice(0, options.promptTokens);
};
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function decode(count: number, salt: number) {
    const sequence = context.getSequence();
    try {
        let produced = 0;
        for await (const token of sequence.evaluate(model.tokenize(`${salt} Once upon a time`) as Token[], {temperature: 0})) {
            model.detokenize([token]);
            if (++produced >= count) break;
        }
        return produced;
    } finally {
        sequence.dispose();
    }
}

const decodeRates: number[] = [];
const cpuPerToken: number[] = [];
const prefillRates: number[] = [];
const idle: number[] = [];
const streamRates: number[] = [];
await decode(8, -1); // warm-up
for (let run = 0; run < options.runs; run++) {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const produced = await decode(options.tokens, run);
    const elapsed = performance.now() - started;
    const used = process.cpuUsage(cpu);
    decodeRates.push(produced / (elapsed / 1000));
    cpuPerToken.push((used.user + used.system) / 1000 / produced);

    const idleCpu = process.cpuUsage();
    const idleStart = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const idleUsed = process.cpuUsage(idleCpu);
    idle.push((idleUsed.user + idleUsed.system) / 1000 / (performance.now() - idleStart) * 100);

    const sequence = context.getSequence();
    const prompt = promptOf(run);
    const prefillStart = performance.now();
    for await (const _ of sequence.evaluate(prompt as Token[], {temperature: 0})) break;
    prefillRates.push(prompt.length / ((performance.now() - prefillStart) / 1000));
    sequence.dispose();

    if (options.streams > 1) {
        const streamsStart = performance.now();
        const counts = await Promise.all(Array.from({length: options.streams}, (_, index) => decode(options.tokens, 1000 * run + index)));
        streamRates.push(counts.reduce((sum, count) => sum + count, 0) / ((performance.now() - streamsStart) / 1000));
    }
}
const result: NativeChildResult = {
    buildType: llama.buildType,
    decodeTokensPerSecond: median(decodeRates),
    prefillTokensPerSecond: median(prefillRates),
    cpuMsPerToken: median(cpuPerToken),
    idleCpuPercent: median(idle),
    ...(options.streams > 1 ? {streamsTokensPerSecond: median(streamRates)} : {})
};
process.stdout.write(JSON.stringify(result) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
process.exit(0);
