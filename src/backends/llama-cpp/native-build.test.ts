import {mkdtemp} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, expect, it} from "vitest";
import {planBuild, readPresets} from "./native-build.js";

describe("native build plans", async () => {
    const presets = await readPresets();

    it("has the presets the issue names", () => {
        expect(Object.keys(presets)).toEqual(["cpu-native", "vulkan-arm-linux", "opencl-adreno", "hexagon", "cuda", "metal"]);
    });

    it("turns a preset into node-llama-cpp's source build with CMake options as environment variables", () => {
        const plan = planBuild("opencl-adreno", presets, {platform: "linux-arm64", env: {}});
        expect(plan.command).toEqual(["npx", "--no", "node-llama-cpp", "source", "download", "--gpu", "false", "--noUsageExample"]);
        expect(plan.env).toEqual({
            NODE_LLAMA_CPP_CMAKE_OPTION_GGML_OPENCL: "ON",
            NODE_LLAMA_CPP_CMAKE_OPTION_GGML_OPENCL_USE_ADRENO_KERNELS: "ON",
            NODE_LLAMA_CPP_CMAKE_OPTION_GGML_OPENCL_EMBED_KERNELS: "ON"
        });
        expect(plan.problems).toEqual([]);
        expect(planBuild("vulkan-arm-linux", presets, {platform: "linux-arm64", env: {}}).command).toContain("vulkan");
    });

    it("names what is missing: the platform, and the Hexagon SDK folders", async () => {
        const sdk = await mkdtemp(path.join(os.tmpdir(), "hexagon-sdk-"));
        const plan = planBuild("hexagon", presets, {platform: "linux-x64", env: {HEXAGON_SDK_ROOT: sdk, HEXAGON_TOOLS_ROOT: "/nonexistent/tools"}});
        expect(plan.env.NODE_LLAMA_CPP_CMAKE_OPTION_HEXAGON_SDK_ROOT).toBe(sdk);
        expect(plan.env.NODE_LLAMA_CPP_CMAKE_OPTION_GGML_HEXAGON).toBe("ON");
        expect(plan.problems).toEqual([
            "preset \"hexagon\" is for linux-arm64, this machine is linux-x64",
            "HEXAGON_TOOLS_ROOT=/nonexistent/tools is not a folder"
        ]);
        expect(() => planBuild("rocm", presets)).toThrow(/No build preset "rocm"; presets: cpu-native, /);
    });
});
