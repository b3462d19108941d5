import {mkdtemp, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, describe, expect, it} from "vitest";
import {buildFiles, decideAutoBuild, maybeStartNativeBuild, runningBuild} from "./auto-native-build.js";

const base = {setting: "auto" as const, ci: false, recorded: false, building: false, gpu: false};

describe("automatic native build", () => {
    it("starts only on a CPU binary, with a toolchain, outside CI, when nothing is recorded, running or failed", () => {
        expect(decideAutoBuild(base)).toEqual({start: true, reason: expect.stringContaining("cmake")});
        expect(decideAutoBuild({...base, setting: "off"}).start).toBe(false);
        expect(decideAutoBuild({...base, recorded: true}).reason).toMatch(/recorded/);
        expect(decideAutoBuild({...base, building: true}).reason).toMatch(/already running/);
        expect(decideAutoBuild({...base, ci: true}).reason).toMatch(/CI/);
        expect(decideAutoBuild({...base, gpu: true}).reason).toMatch(/GPU/);
        expect(decideAutoBuild({...base, failed: "exit code 2"}).reason).toMatch(/failed \(exit code 2\).*build-backend/);
        expect(decideAutoBuild({...base, toolchainProblem: "cmake is not installed"})).toEqual({start: false, reason: "cmake is not installed"});
    });

    const dirs: string[] = [];
    afterAll(async () => {
        for (const dir of dirs) await rm(dir, {recursive: true, force: true});
    });

    it("spawns nothing under CI or when off, and forgets a stale lock", async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-native-"));
        dirs.push(dir);
        const record = path.join(dir, "native-build.json");
        const messages: string[] = [];
        const status = await maybeStartNativeBuild({setting: "auto", record, gpu: false, log: (message) => messages.push(message), env: {CI: "true"}});
        expect(status).toMatchObject({start: false, reason: expect.stringMatching(/CI/)});
        expect((await maybeStartNativeBuild({setting: "off", record, gpu: false, log: (message) => messages.push(message), env: {}})).start).toBe(false);
        expect(messages).toEqual([]);

        // A lock left by a build process that is gone.
        await writeFile(buildFiles(record).lock, "999999999\n");
        expect(await runningBuild(record)).toBeUndefined();
    });
});
