/**
 * Builds node-llama-cpp's bundled llama.cpp from source with a preset from native/presets.json
 * and records the build, so `edge-llm serve` loads it instead of the prebuilt binary.
 *
 *   npx tsx scripts/build-backend.ts --list
 *   npx tsx scripts/build-backend.ts cpu-native --dry-run    # print the command and environment only
 *   npx tsx scripts/build-backend.ts cpu-native [--record .edge-llm/native-build.json] [--force] [--compare MODEL.gguf]
 *   npx tsx scripts/build-backend.ts --compare-only --compare MODEL.gguf  # measure the recorded build again
 *
 * A build takes minutes and all cores (about 4 minutes for cpu-native on 2 cores). `--compare`
 * then measures a CPU build against the prebuilt binary on that model (both loaded and autotuned
 * in their own processes, then requests timed on each alternately for at least 20 s) and records
 * whether it pays; `serve` loads it only if so.
 */
import {spawn} from "node:child_process";
import {mkdir, rm, writeFile} from "node:fs/promises";
import path from "node:path";
import {parseArgs} from "node:util";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {compareBuilds, describeComparison} from "../src/backends/llama-cpp/build-comparison.js";
import {currentPlatform, DEFAULT_BUILD_RECORD, planBuild, readBuildRecord, readPresets, writeBuildRecord, type NativeBuildRecord} from "../src/backends/llama-cpp/native-build.js";

const {values, positionals} = parseArgs({
    allowPositionals: true,
    options: {
        "dry-run": {type: "boolean", default: false},
        list: {type: "boolean", default: false},
        force: {type: "boolean", default: false},
        record: {type: "string"},
        /** A model to measure a CPU build against the prebuilt binary on. */
        compare: {type: "string"},
        /** Skip the build: compare the recorded one again (with --compare). */
        "compare-only": {type: "boolean", default: false},
        /** Written when the build fails (what `serve`'s automatic build reads to not retry); removed on success. */
        failed: {type: "string"}
    }
});

const presets = await readPresets();
const recordFile = path.resolve(values.record ?? process.env.EDGE_LLM_NATIVE_BUILD_RECORD ?? DEFAULT_BUILD_RECORD);
if (values["compare-only"]) {
    const record = await readBuildRecord(recordFile);
    if (record == null || values.compare == null) {
        process.stderr.write(record == null ? `No build is recorded in ${recordFile}.\n` : "--compare-only needs --compare MODEL.gguf\n");
        process.exit(2);
    }
    const compared = await withComparison(record, values.compare);
    await writeBuildRecord(recordFile, compared);
    process.stdout.write(`recorded in ${recordFile}: ${whatServeLoads(compared)}\n`);
    process.exit(0);
}
if (values.list || positionals.length === 0) {
    const platform = currentPlatform();
    for (const [name, preset] of Object.entries(presets))
        process.stdout.write(`${name.padEnd(18)} ${preset.platforms.includes(platform) ? "      " : "(n/a) "}${preset.description}\n`);
    process.stdout.write(`\nThis machine: ${platform}. Usage: npx tsx scripts/build-backend.ts <preset> [--dry-run]\n`);
    process.exit(positionals.length === 0 && !values.list ? 2 : 0);
}

const plan = planBuild(positionals[0]!, presets);
const shellLine = [...Object.entries(plan.env).map(([key, value]) => `${key}=${quote(value)}`), ...plan.command.map(quote)].join(" ");
process.stdout.write(`preset:  ${plan.preset}\ncommand: ${shellLine}\nrecord:  ${recordFile}\n`);
for (const problem of plan.problems) process.stderr.write(`problem: ${problem}\n`);
if (plan.problems.length > 0 && !values.force) {
    process.stderr.write("Not building (--force tries anyway).\n");
    process.exit(1);
}
if (values["dry-run"]) process.exit(0);

const code = await new Promise<number>((resolve) => {
    const child = spawn(plan.command[0]!, plan.command.slice(1), {stdio: "inherit", env: {...process.env, ...plan.env}});
    child.on("close", (exitCode) => resolve(exitCode ?? 1));
});
if (code !== 0) {
    process.stderr.write(`The build failed (exit code ${code}); the runtime keeps using the prebuilt binary.\n`);
    await recordFailure(`exit code ${code} at ${new Date().toISOString()}`);
    process.exit(code);
}

// Load the new binary the way the runtime will, so the record only names builds that work.
const preset = presets[plan.preset]!;
const llama = await getLlama({gpu: preset.gpu, cmakeOptions: plan.cmakeOptions, build: "never", usePrebuiltBinaries: false, logLevel: LlamaLogLevel.error})
    .catch(async (error: unknown) => {
        await recordFailure(`the build does not load: ${(error as Error).message.split("\n")[0]} (${new Date().toISOString()})`);
        throw error;
    });
process.stdout.write(`built: ${llama.buildType}, gpu ${llama.gpu === false ? "none" : llama.gpu}, ${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}\n`);
await llama.dispose();
const built: NativeBuildRecord = {
    preset: plan.preset,
    gpu: preset.gpu,
    cmakeOptions: plan.cmakeOptions,
    offload: preset.offload,
    builtAt: new Date().toISOString(),
    platform: currentPlatform(),
    command: shellLine
};
// A GPU build is not compared: the prebuilt binary it would be measured against decodes on the CPU.
const compare = values.compare != null && preset.gpu === false && preset.offload !== true;
const record = compare ? await withComparison(built, values.compare!) : built;
await writeBuildRecord(recordFile, record);
if (values.failed != null) await rm(values.failed, {force: true});
process.stdout.write(`recorded in ${recordFile}: ${whatServeLoads(record)} (edge-llm doctor shows it)\n`);

/** The record with the comparison on `model`, or with why it could not be made (then it loads as an uncompared build). */
async function withComparison(record: NativeBuildRecord, model: string): Promise<NativeBuildRecord> {
    const {comparison: _old, comparisonError: _oldError, ...rest} = record;
    process.stdout.write(`comparing the local build with the prebuilt binary on ${model} (each autotuned in its own process)\n`);
    try {
        const comparison = await compareBuilds({model: path.resolve(model), record: rest, log: (message) => process.stdout.write(`${message}\n`)});
        process.stdout.write(`${comparison.pays ? "pays" : "does not pay"}: ${describeComparison(comparison)}\n`);
        return {...rest, comparison};
    } catch (error) {
        const reason = (error as Error).message;
        process.stderr.write(`comparison failed (${reason}); the build loads as if not compared\n`);
        return {...rest, comparisonError: reason};
    }
}

function whatServeLoads(record: NativeBuildRecord) {
    return record.comparison?.pays === false
        ? "edge-llm serve keeps the prebuilt binary, which was as fast (nativeBuild \"on\" loads this build anyway)"
        : "edge-llm serve now loads this build";
}

async function recordFailure(reason: string) {
    if (values.failed == null) return;
    await mkdir(path.dirname(values.failed), {recursive: true});
    await writeFile(values.failed, `${reason}\n`);
}

function quote(value: string) {
    return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}
