import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {writeBuildRecord} from "../src/backends/llama-cpp/native-build.js";
import {isStories260K, repoRoot, testModelPath} from "./helpers/model.js";
import {isolatedEnv, runToEnd} from "./helpers/cli.js";

/**
 * The build script's dry run (the real build takes minutes of every core and is run by hand),
 * and what the runtime does with a recorded build that is not there: the prebuilt binary, saying why.
 */

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
            nativeBuild: {preset: "cpu-native", gpu: false, cmakeOptions: {GGML_NATIVE: "ON", GGML_OPENMP: "ON", EDGE_LLM_TEST_ONLY: "1"}, builtAt: "2026-01-01T00:00:00.000Z", platform: "linux-x64", command: "x"}
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
