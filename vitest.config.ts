import {defineConfig} from "vitest/config";

export default defineConfig({
    test: {
        include: ["test/**/*.test.ts", "src/**/*.test.ts"],
        // Each file loads the real model; on a 2-core machine two files at a time is the sweet spot.
        poolOptions: {forks: {maxForks: 2, minForks: 1}},
        pool: "forks",
        testTimeout: 30_000,
        // Servers the tests start never kick off the background native llama.cpp build.
        env: {EDGE_LLM_NATIVE_BUILD: "off"},
        hookTimeout: 60_000
    }
});
