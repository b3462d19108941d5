import {mkdtemp, readFile, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {startBinaryProcess} from "../src/backends/llama-cpp/build-comparison.js";
import {readBuildRecord, writeBuildRecord, type NativeBuildRecord} from "../src/backends/llama-cpp/native-build.js";
import {isStories260K, repoRoot, testModelPath} from "./helpers/model.js";
import {isolatedEnv, runToEnd} from "./helpers/cli.js";

/**
 * The build script's dry run (the real build takes minutes of every core and is run by hand),
 * what the runtime does with a recorded build that is not there or measured no faster: the
 * prebuilt binary, saying why; and the measurement that compares a build with the prebuilt binary.
 */

/** A record of a build that was never made here (the option no build has). */
const missingBuild: NativeBuildRecord = {
    preset: "cpu-native", gpu: false, cmakeOptions: {GGML_NATIVE: "ON", GGML_OPENMP: "ON", EDGE_LLM_TEST_ONLY: "1"},
    builtAt: "2026-01-01T00:00:00.000Z", platform: "linux-x64", command: "x"
};

let tmp: string;
beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "edge-llm-native-"));
});
afterAll(async () => {
    if (tmp != null) await rm(tmp, {recursive: true, force: true});
});

function run(args: string[], env: Record<string, string> = {}) {
    return runToEnd(args, isolatedEnv(env, ["EDGE_LLM_", "NODE_LLAMA_CPP_"]));
}

describe("scripts/build-backend.ts --dry-run", () => {
    it("prints the exact command and environment of the cpu-native build without building", async () => {
        const record = path.join(tmp, "record.json");
        const {code, stdout, stderr} = await run([path.join(repoRoot, "scripts/build-backend.ts"), "cpu-native", "--dry-run", "--record", record]);
        expect(code, stderr).toBe(0);
        expect(stdout).toBe([
            "preset:  cpu-native",
            "command: NODE_LLAMA_CPP_CMAKE_OPTION_GGML_NATIVE=ON NODE_LLAMA_CPP_CMAKE_OPTION_GGML_OPENMP=ON npx --no node-llama-cpp source download --gpu false --noUsageExample",
            `record:  ${record}`,
            ""
        ].join("\n"));
    });
});

describe("a recorded local build", () => {
    it("falls back to the prebuilt binary with the reason when the recorded build is missing", async () => {
        const logs: string[] = [];
        const backend = await LlamaCppBackend.create({
            gpu: false,
            logger: (level, message) => { if (level === "warn") logs.push(message); },
            nativeBuild: missingBuild
        });
        try {
            expect(backend.build).toMatchObject({type: "prebuilt"});
            expect(backend.build.reason).toBe("the recorded local build \"cpu-native\" did not load: no local binary with its options exists " +
                "(build it: npx tsx scripts/build-backend.ts cpu-native); the prebuilt binary runs");
            expect(logs).toEqual([backend.build.reason]);
            const model = await backend.loadModel({path: testModelPath, id: "m", parallel: 1, contextSize: 256});
            await model.dispose();
        } finally {
            await backend.dispose();
        }
    });

    it.skipIf(!isStories260K)("edge-llm doctor reports the backend, build, GPU, threads and why", async () => {
        const record = path.join(tmp, "doctor-record.json");
        await writeBuildRecord(record, {preset: "cpu-native", gpu: false, cmakeOptions: {GGML_NATIVE: "ON", EDGE_LLM_TEST_ONLY: "1"}, builtAt: "x", platform: "linux-x64", command: "x"});
        const {code, stdout, stderr} = await run([path.join(repoRoot, "src/cli/main.ts"), "doctor", "--json", "--gpu", "cpu", "--model", testModelPath],
            {EDGE_LLM_NATIVE_BUILD_RECORD: record});
        expect(code, stderr).toBe(0);
        const report = JSON.parse(stdout) as Record<string, any>;
        expect(report.backend.name).toBe("llama.cpp");
        expect(report.build).toMatchObject({type: "prebuilt", record});
        expect(report.build.reason).toContain("the recorded local build \"cpu-native\" did not load");
        expect(report.gpu).toMatchObject({type: "none", reason: "--gpu cpu / gpu \"cpu\": the GPU is never used"});
        expect(report.threads).toMatchObject({threads: 1, forModel: "stories260K.gguf"});
        // A CPU-only run with one model: serve would relaunch with one pool thread.
        expect(report.pool).toMatchObject({threads: 1});
        expect(report.pool.reason).toMatch(/^serve and chat relaunch with UV_THREADPOOL_SIZE=1: /);
        // This machine has a C++ compiler: the native decode loop is available.
        expect(report.decodeLoop.kind).toBe("native");
        expect(report.decodeLoop.reason).toContain("decode-loop-");
        expect(report.memory.ramFreeBytes).toBeGreaterThan(0);
        expect(report.buildPresets.map((preset: {name: string}) => preset.name)).toContain("hexagon");
    });
});

describe("a local build measured against the prebuilt binary", () => {
    it("measures a binary the way serve loads it: its own process, one pool thread, autotuned, then requests timed on demand", async () => {
        const running = await startBinaryProcess({model: testModelPath, tuningFile: path.join(tmp, "tuning.json"), env: isolatedEnv({}, ["EDGE_LLM_", "NODE_LLAMA_CPP_"])});
        try {
            const {build, tuned} = running.measured;
            expect(build.type).toBe("prebuilt");
            expect(tuned.measurements.map((entry) => entry.threads)).toContain(tuned.threads);
            for (const entry of tuned.measurements) expect(entry.tokensPerSecond).toBeGreaterThan(0);
            expect(tuned.flashAttentionMeasurements?.map((entry) => entry.flashAttention)).toEqual([false, true]);
            for (let request = 0; request < 3; request++) {
                const timing = await running.time();
                expect(timing.prefillTokensPerSecond).toBeGreaterThan(0);
                expect(timing.decodeTokensPerSecond).toBeGreaterThan(0);
            }
        } finally {
            await running.close();
        }
    });

    it("--compare-only records why a comparison failed, and the build then loads as if never compared", async () => {
        const record = path.join(tmp, "compare-record.json");
        await writeBuildRecord(record, missingBuild);
        const {code, stdout, stderr} = await run([path.join(repoRoot, "scripts/build-backend.ts"), "--compare-only", "--compare", testModelPath, "--record", record]);
        expect(code, stderr).toBe(0);
        expect(stderr).toContain("comparison failed (the local binary did not load");
        const written = await readBuildRecord(record);
        expect(written?.comparison).toBeUndefined();
        expect(written?.comparisonError).toMatch(/^the local binary did not load: the recorded local build "cpu-native" did not load: no local binary/);
        expect(stdout).toContain("edge-llm serve now loads this build");
    }, 60_000);

    it("edge-llm doctor: a build that measured no faster stays unloaded, unless nativeBuild is \"on\"", async () => {
        const record = path.join(tmp, "slower-record.json");
        const score = (decodeTokensPerSecond: number) => ({threads: 1, flashAttention: false, decodeTokensPerSecond, prefillTokensPerSecond: 9000});
        await writeBuildRecord(record, {
            ...missingBuild,
            comparison: {model: "m.gguf", measuredAt: "x", requests: 40, prebuilt: score(1600), local: score(1550), ratio: 0.97, pays: false}
        });
        const doctor = async (env: Record<string, string>) => {
            const {code, stdout, stderr} = await run([path.join(repoRoot, "src/cli/main.ts"), "doctor", "--json", "--gpu", "cpu", "--model", testModelPath],
                {EDGE_LLM_NATIVE_BUILD_RECORD: record, ...env});
            expect(code, stderr).toBe(0);
            return (JSON.parse(stdout) as {build: {type: string; reason: string}}).build;
        };
        const skipped = await doctor({});
        expect(skipped.type).toBe("prebuilt");
        expect(skipped.reason).toMatch(/^the local build "cpu-native" measured no faster than the prebuilt binary here \(m\.gguf, 40 requests each: local 1,550 tok\/s decode, 9,000 prefill against prebuilt 1,600 tok\/s decode, 9,000 prefill: /);
        // "on" tries the recorded build, which was never built here.
        const forced = await doctor({EDGE_LLM_NATIVE_BUILD: "on"});
        expect(forced.type).toBe("prebuilt");
        expect(forced.reason).toContain("the recorded local build \"cpu-native\" did not load: no local binary");
    }, 60_000);
});
