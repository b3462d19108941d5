import {mkdtemp, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {testModelPath} from "./helpers/model.js";
import {isolatedEnv, runToEnd, startServe} from "./helpers/cli.js";

let dir: string;
beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-single-pool-"));
});
afterAll(async () => {
    if (dir != null) await rm(dir, {recursive: true, force: true});
});

describe.skipIf(os.availableParallelism() < 2)("serve with a local OpenMP build", () => {
    it("relaunches itself with one libuv pool thread, serves, and passes SIGTERM through to a clean exit 0", async () => {
        // A recorded OpenMP build; where its binary does not exist (CI) the prebuilt one runs, the relaunch happens all the same.
        const record = path.join(dir, "native-build.json");
        await writeFile(record, JSON.stringify({
            preset: "cpu-native", gpu: false, cmakeOptions: {GGML_NATIVE: "ON", GGML_OPENMP: "ON"},
            builtAt: new Date().toISOString(), platform: `${process.platform}-${process.arch}`, command: "test"
        }));
        const {child, url, exited, stderr} = await startServe(["--model", testModelPath, "--port", "0", "--log-level", "debug"], {
            EDGE_LLM_NATIVE_BUILD_RECORD: record, EDGE_LLM_THREAD_TUNING_FILE: path.join(dir, "tuning.json")
        });
        try {
            expect(stderr()).toContain("relaunching with UV_THREADPOOL_SIZE=1");
            const response = await fetch(`${url}/v1/completions`, {method: "POST", body: JSON.stringify({model: "default", prompt: "Once", max_tokens: 4})});
            expect(response.status).toBe(200);
            child.kill("SIGTERM");
            expect(await exited).toBe(0);
        } finally {
            child.kill("SIGKILL");
        }
    }, 60_000);
});

describe.skipIf(os.availableParallelism() < 2)("chat on the CPU", () => {
    it("relaunches itself with one libuv pool thread in the terminal's process group and still answers piped turns", async () => {
        const {code, stdout, stderr} = await runToEnd(
            ["src/cli/main.ts", "chat", "--model", testModelPath, "--gpu", "cpu", "--temperature", "0", "--max-tokens", "8", "--log-level", "debug"],
            isolatedEnv({EDGE_LLM_THREAD_TUNING_FILE: path.join(dir, "chat-tuning.json"), EDGE_LLM_POWER: "false"}),
            "Hello\n/exit\n"
        );
        expect(code, stderr).toBe(0);
        expect(stderr).toContain("relaunching with UV_THREADPOOL_SIZE=1");
        expect(stdout.trim().length).toBeGreaterThan(0);
    }, 60_000);
});
