/**
 * Builds node-llama-cpp's bundled llama.cpp from source with a preset from native/presets.json
 * and records the build, so `edge-llm serve` loads it instead of the prebuilt binary.
 *
 *   npx tsx scripts/build-backend.ts --list
 *   npx tsx scripts/build-backend.ts cpu-native --dry-run    # print the command and environment only
 *   npx tsx scripts/build-backend.ts cpu-native [--record .edge-llm/native-build.json] [--force]
 *
 * A build takes minutes and all cores (about 4 minutes for cpu-native on 2 cores).
 */
import {spawn} from "node:child_process";
import {mkdir, rm, writeFile} from "node:fs/promises";
import path from "node:path";
import {parseArgs} from "node:util";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {currentPlatform, DEFAULT_BUILD_RECORD, planBuild, readPresets, writeBuildRecord} from "../src/backends/llama-cpp/native-build.js";

const {values, positionals} = parseArgs({
    allowPositionals: true,
    options: {
        "dry-run": {type: "boolean", default: false},
        list: {type: "boolean", default: false},
        force: {type: "boolean", default: false},
        record: {type: "string"},
        /** Written when the build fails (what `serve`'s automatic build reads to not retry); removed on success. */
        failed: {type: "string"}
    }
});

const presets = await readPresets();
if (values.list || positionals.length === 0) {
    const platform = currentPlatform();
    for (const [name, preset] of Object.entries(presets))
        process.stdout.write(`${name.padEnd(18)} ${preset.platforms.includes(platform) ? "      " : "(n/a) "}${preset.description}\n`);
    process.stdout.write(`\nThis machine: ${platform}. Usage: npx tsx scripts/build-backend.ts <preset> [--dry-run]\n`);
    process.exit(positionals.length === 0 && !values.list ? 2 : 0);
}

const plan = planBuild(positionals[0]!, presets);
const recordFile = path.resolve(values.record ?? process.env.EDGE_LLM_NATIVE_BUILD_RECORD ?? DEFAULT_BUILD_RECORD);
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
await writeBuildRecord(recordFile, {
    preset: plan.preset,
    gpu: preset.gpu,
    cmakeOptions: plan.cmakeOptions,
    offload: preset.offload,
    builtAt: new Date().toISOString(),
    platform: currentPlatform(),
    command: shellLine
});
if (values.failed != null) await rm(values.failed, {force: true});
process.stdout.write(`recorded in ${recordFile}: edge-llm serve now loads this build (edge-llm doctor shows it)\n`);

async function recordFailure(reason: string) {
    if (values.failed == null) return;
    await mkdir(path.dirname(values.failed), {recursive: true});
    await writeFile(values.failed, `${reason}\n`);
}

function quote(value: string) {
    return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}
