import os from "node:os";
import {describe, expect, it} from "vitest";
import {settingsSchema} from "../config/schema.js";
import type {NativeBuildRecord} from "../backends/llama-cpp/native-build.js";
import {singlePoolReason} from "./single-pool.js";

const openMpBuild: NativeBuildRecord = {
    preset: "cpu-native", gpu: false, cmakeOptions: {GGML_NATIVE: "ON", GGML_OPENMP: "ON"},
    builtAt: "2026-11-25T00:00:00.000Z", platform: "linux-x64", command: "x"
};
const settings = (input: Record<string, unknown> = {}) => settingsSchema.parse(input);

describe.skipIf(os.availableParallelism() < 2)("one libuv pool thread for a local OpenMP build", () => {
    it("is asked for with a local CPU OpenMP build and one loaded model", () => {
        expect(singlePoolReason(settings(), openMpBuild, {})).toMatch(/OpenMP/);
    });

    it("is not asked for without such a build, with several models, one thread, or when the environment decides", () => {
        expect(singlePoolReason(settings(), undefined, {})).toBeUndefined();
        expect(singlePoolReason(settings(), {...openMpBuild, cmakeOptions: {GGML_NATIVE: "ON"}}, {})).toBeUndefined();
        expect(singlePoolReason(settings(), {...openMpBuild, gpu: "vulkan"}, {})).toBeUndefined();
        expect(singlePoolReason(settings({maxLoadedModels: 2}), openMpBuild, {})).toBeUndefined();
        expect(singlePoolReason(settings({threads: 1}), openMpBuild, {})).toBeUndefined();
        expect(singlePoolReason(settings(), openMpBuild, {UV_THREADPOOL_SIZE: "8"})).toBeUndefined();
        expect(singlePoolReason(settings(), openMpBuild, {EDGE_LLM_RELAUNCHED: "1"})).toBeUndefined();
    });
});
