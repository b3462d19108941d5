import {mkdtemp, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, expect, it} from "vitest";
import {loadSettings, SettingsError} from "./load.js";

describe("loadSettings", () => {
    it("has defaults that serve on loopback", async () => {
        const settings = await loadSettings({env: {}, cwd: os.tmpdir()});
        expect(settings).toMatchObject({host: "127.0.0.1", port: 8080, parallel: 4, modelsDir: "models"});
        expect(settings.threads).toBeUndefined();
    });

    it("layers config file < env < flags", async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-config-"));
        const file = path.join(dir, "hono.config.ts");
        await writeFile(file, `export default {port: 1111, parallel: 3, threads: 1, host: "0.0.0.0"} satisfies Record<string, unknown>;`);
        const settings = await loadSettings({cwd: dir, env: {EDGE_LLM_PORT: "2222", EDGE_LLM_THREADS: "2"}, flags: {port: 3333, model: undefined}});
        expect(settings).toMatchObject({port: 3333, threads: 2, parallel: 3, host: "0.0.0.0"});
    });

    it("names the environment variable that is wrong", async () => {
        const error = await loadSettings({env: {EDGE_LLM_PORT: "abc"}, cwd: os.tmpdir()}).catch((caught) => caught);
        expect(error).toBeInstanceOf(SettingsError);
        expect(error.message).toContain("EDGE_LLM_PORT");
    });

    it("rejects unknown keys in the config file with the file named", async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-config-"));
        const file = path.join(dir, "custom.config.ts");
        await writeFile(file, `export default {prot: 1};`);
        await expect(loadSettings({configFile: file, env: {}, cwd: dir})).rejects.toThrow(/custom\.config\.ts[\s\S]*prot/);
    });

    it("rejects bad flag values", async () => {
        await expect(loadSettings({flags: {parallel: 0}, env: {}, cwd: os.tmpdir()})).rejects.toThrow(/command-line flags[\s\S]*parallel/);
    });
});

describe("nested settings (power)", () => {
    it("merge field by field across layers, with their own environment variables", async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-config-"));
        await writeFile(path.join(dir, "hono.config.ts"), `export default {power: {pollIntervalMs: 500, override: "fair"}};`);
        const settings = await loadSettings({cwd: dir, env: {EDGE_LLM_SENSOR_ROOT: "/tmp/fake-sys"}});
        expect(settings.power).toEqual({enabled: true, sensorRoot: "/tmp/fake-sys", pollIntervalMs: 500, override: "fair"});
        expect((await loadSettings({cwd: os.tmpdir(), env: {}})).power).toEqual({enabled: true, sensorRoot: "/sys", pollIntervalMs: 1000});
    });

    it("name the nested variable that is wrong", async () => {
        await expect(loadSettings({env: {EDGE_LLM_POWER_POLL_MS: "soon"}, cwd: os.tmpdir()})).rejects.toThrow(/EDGE_LLM_POWER_POLL_MS/);
    });
});
