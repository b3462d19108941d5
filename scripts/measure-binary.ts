/**
 * One side of the local-build comparison (src/backends/llama-cpp/build-comparison.ts): loads a
 * model with the prebuilt binary, or with the local build named by `--record` (its JSON), the way
 * `serve` does, autotuning into a fresh cache file, and prints the binary and what the tuning
 * measured as one JSON line.
 *
 *   UV_THREADPOOL_SIZE=1 npx tsx scripts/measure-binary.ts --model M.gguf --tuning /tmp/t.json [--record '{…}']
 */
import {readFile} from "node:fs/promises";
import {parseArgs} from "node:util";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import type {NativeBuildRecord} from "../src/backends/llama-cpp/native-build.js";
import type {TunedThreads} from "../src/backends/llama-cpp/thread-tuning.js";
import {chooseWaitPolicy} from "../src/backends/llama-cpp/wait-policy.js";

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
    const model = await backend.loadModel({path: values.model, id: "compare", parallel: 1, contextSize: 512, threadTuning: {cacheFile: values.tuning}});
    await model.dispose();
    const entries = Object.values(JSON.parse(await readFile(values.tuning, "utf8")) as Record<string, TunedThreads>);
    if (entries.length !== 1) throw new Error(`expected one tuning result, found ${entries.length}`);
    process.stdout.write(`${JSON.stringify({build: {type: backend.build.type, reason: backend.build.reason}, tuned: entries[0]})}\n`);
} finally {
    await backend.dispose();
}
