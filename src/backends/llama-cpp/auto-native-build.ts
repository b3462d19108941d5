/**
 * The native CPU build by default: node-llama-cpp's prebuilt binary is generic, and a build of
 * its bundled llama.cpp for this CPU (OpenMP, -march=native) decoded a 1B Q4_0 model ~40% faster
 * on an AVX-512 host (and no faster on an AVX2 one). Where cmake and a C++ compiler exist and no
 * build is recorded, `serve` starts that build in a background process at low priority and keeps
 * serving with the prebuilt binary; the next start loads the native build if it measured faster
 * than the prebuilt binary on the served model (build-comparison.ts). A failed build is
 * remembered and not retried on its own.
 */
import {execFile, spawn} from "node:child_process";
import {existsSync, openSync, closeSync} from "node:fs";
import {mkdir, readFile, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {chooseRecordedBuild, type NativeBuildSetting} from "./build-comparison.js";
import type {NativeBuildRecord} from "./native-build.js";

export const buildFiles = (record: string) => ({
    record,
    lock: `${record}.lock`,
    failed: `${record}.failed`,
    log: `${record.replace(/\.json$/, "")}.log`
});

export interface AutoBuildDecision {
    start: boolean;
    reason: string;
}

/** Whether to start a build now; pure, so every reason is testable. */
export function decideAutoBuild(input: {
    setting: NativeBuildSetting;
    ci: boolean;
    recorded: boolean;
    building: boolean;
    failed?: string;
    toolchainProblem?: string;
    gpu: boolean;
}): AutoBuildDecision {
    if (input.setting === "off") return {start: false, reason: "nativeBuild is off"};
    if (input.recorded) return {start: false, reason: "a native build is recorded"};
    if (input.building) return {start: false, reason: "a native build is already running"};
    if (input.ci) return {start: false, reason: "CI is set: no background builds under test runners"};
    if (input.gpu) return {start: false, reason: "a GPU binary runs; the CPU build would not be used"};
    if (input.failed != null) return {start: false, reason: `an earlier native build failed (${input.failed}); run scripts/build-backend.ts cpu-native to retry`};
    if (input.toolchainProblem != null) return {start: false, reason: input.toolchainProblem};
    return {start: true, reason: "cmake and a C++ compiler found, no native build yet"};
}

/** cmake and a C++ compiler on PATH, or why not. */
export async function findToolchainProblem(): Promise<string | undefined> {
    const works = (command: string) => new Promise<boolean>((resolve) =>
        execFile(command, ["--version"], {timeout: 5000}, (error) => resolve(error == null)));
    if (!(await works("cmake"))) return "cmake is not installed";
    for (const compiler of ["c++", "g++", "clang++"])
        if (await works(compiler)) return undefined;
    return "no C++ compiler (c++, g++ or clang++) is installed";
}

function processAlive(pid: number) {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/** The pid of a running build from the lock file, removing a stale lock. */
export async function runningBuild(record: string): Promise<number | undefined> {
    const {lock} = buildFiles(record);
    if (!existsSync(lock)) return undefined;
    const pid = Number((await readFile(lock, "utf8").catch(() => "")).trim());
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) return pid;
    await rm(lock, {force: true});
    return undefined;
}

export interface AutoBuildStatus extends AutoBuildDecision {
    /** Set while this call started or found a build. */
    pid?: number;
    log?: string;
}

/**
 * Applies the decision: spawns `scripts/build-backend.ts cpu-native --record FILE` detached, at the
 * lowest priority, with its output in the log file, and reports build progress through `log`
 * while this process lives. Never throws: a problem only means no build.
 */
export async function maybeStartNativeBuild(options: {
    setting: NativeBuildSetting;
    record: string;
    gpu: boolean;
    /** The served model: the build is measured against the prebuilt binary on it. */
    compareModel?: string;
    log: (message: string) => void;
    env?: NodeJS.ProcessEnv;
}): Promise<AutoBuildStatus> {
    const env = options.env ?? process.env;
    const files = buildFiles(options.record);
    try {
        const building = await runningBuild(options.record);
        const failed = existsSync(files.failed) ? (await readFile(files.failed, "utf8")).trim().split("\n")[0] : undefined;
        const decision = decideAutoBuild({
            setting: options.setting,
            ci: env.CI != null && env.CI !== "" && env.CI !== "false",
            recorded: existsSync(options.record),
            building: building != null,
            failed,
            toolchainProblem: options.setting === "off" || existsSync(options.record) ? undefined : await findToolchainProblem(),
            gpu: options.gpu
        });
        if (building != null) {
            watchProgress(files.log, building, options.log);
            return {...decision, pid: building, log: files.log};
        }
        if (!decision.start) return decision;

        await mkdir(path.dirname(options.record), {recursive: true});
        const out = openSync(files.log, "w");
        const script = fileURLToPath(new URL("../../../scripts/build-backend.ts", import.meta.url));
        const compare = options.compareModel == null ? [] : ["--compare", options.compareModel];
        const child = spawn(process.execPath, ["--import", "tsx", script, "cpu-native", "--record", options.record, "--failed", files.failed, ...compare],
            {detached: true, stdio: ["ignore", out, out], env, cwd: path.resolve(path.dirname(script), "..")});
        closeSync(out);
        if (child.pid == null) return {start: false, reason: "could not start the build process"};
        try {
            os.setPriority(child.pid, 19);
        } catch {
            // Not permitted here: the build runs at normal priority.
        }
        await writeFile(files.lock, `${child.pid}\n`);
        child.once("exit", () => void rm(files.lock, {force: true}));
        child.unref();
        options.log(`building llama.cpp for this CPU in the background (OpenMP, -march=native; minutes; log ${files.log}); ` +
            "the prebuilt binary serves meanwhile; then it is measured against the prebuilt binary, and the next start loads it if it is faster");
        watchProgress(files.log, child.pid, options.log);
        return {...decision, pid: child.pid, log: files.log};
    } catch (error) {
        return {start: false, reason: `native build not started: ${(error as Error).message}`};
    }
}

/** Logs "[n/N]" progress from the build log every 30 s while the build runs. */
function watchProgress(logFile: string, pid: number, log: (message: string) => void) {
    let last = "";
    const timer = setInterval(async () => {
        if (!processAlive(pid)) {
            clearInterval(timer);
            return;
        }
        const text = await readFile(logFile, "utf8").catch(() => "");
        const steps = [...text.matchAll(/\[(\d+)\/(\d+)\]/g)].at(-1);
        const progress = steps == null ? "configuring" : `${Math.round((Number(steps[1]) / Number(steps[2])) * 100)}% (${steps[1]}/${steps[2]})`;
        if (progress !== last) log(`native llama.cpp build: ${progress}`);
        last = progress;
    }, 30_000);
    timer.unref();
}

/**
 * The recorded local build to load, unless a build is running right now (node-llama-cpp would
 * wait for it) or it measured no faster than the prebuilt binary (`skipped` says so).
 */
export async function loadableBuildRecord(recordFile: string, setting: NativeBuildSetting): Promise<{building?: number; record?: NativeBuildRecord; skipped?: string}> {
    const {readBuildRecord} = await import("./native-build.js");
    const building = await runningBuild(recordFile);
    if (building != null) return {building};
    return chooseRecordedBuild(await readBuildRecord(recordFile), setting);
}
