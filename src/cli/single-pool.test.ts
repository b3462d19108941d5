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

const noGpu = async () => false;
const gpu = async () => true;

describe.skipIf(os.availableParallelism() < 2)("one libuv pool thread when decoding on the CPU", () => {
    it("is asked for with a local CPU OpenMP build, naming it", async () => {
        expect(await singlePoolReason(settings(), openMpBuild, gpu, {})).toMatch(/OpenMP/);
        expect(await singlePoolReason(settings({threads: 1}), openMpBuild, noGpu, {})).toMatch(/OpenMP/);
    });

    it("is asked for with the prebuilt binary where no GPU is found or the GPU is off", async () => {
        expect(await singlePoolReason(settings(), undefined, noGpu, {})).toMatch(/CPU/);
        expect(await singlePoolReason(settings(), {...openMpBuild, cmakeOptions: {GGML_NATIVE: "ON"}}, noGpu, {})).toMatch(/CPU/);
        expect(await singlePoolReason(settings({gpu: "cpu"}), undefined, gpu, {})).toMatch(/CPU/);
        expect(await singlePoolReason(settings({gpu: "cpu"}), {...openMpBuild, gpu: "vulkan"}, gpu, {})).toMatch(/CPU/);
    });

    it("is not asked for on a GPU, with several models, or when the environment decides", async () => {
        expect(await singlePoolReason(settings(), undefined, gpu, {})).toBeUndefined();
        expect(await singlePoolReason(settings(), {...openMpBuild, gpu: "vulkan"}, noGpu, {})).toBeUndefined();
        expect(await singlePoolReason(settings({maxLoadedModels: 2}), openMpBuild, noGpu, {})).toBeUndefined();
        expect(await singlePoolReason(settings(), openMpBuild, noGpu, {UV_THREADPOOL_SIZE: "8"})).toBeUndefined();
        expect(await singlePoolReason(settings(), openMpBuild, noGpu, {EDGE_LLM_RELAUNCHED: "1"})).toBeUndefined();
    });
});
