import {execFile} from "node:child_process";
import {createHash} from "node:crypto";
import {existsSync, readFileSync} from "node:fs";
import {mkdir, readFile, rename, rm} from "node:fs/promises";
import {createRequire} from "node:module";
import path from "node:path";
import {fileURLToPath} from "node:url";

/**
 * The native decode loop (native/decode-loop/decode-loop.cpp): one small C++ file compiled on
 * first use with the machine's C++ compiler (about 1.5 s), against the headers node-llama-cpp
 * ships, and cached by a hash of everything that goes into it. No compiler, Windows, a failed
 * compile or `EDGE_LLM_NATIVE_LOOP=off`: the addon is unavailable and decoding stays on
 * node-llama-cpp's own loop. The reason is kept for `edge-llm doctor` and the log.
 */

export interface DecodeLoopRunParams {
    sequence: number;
    /** Where `input` goes: the sequence's cells must end right before it. */
    position: number;
    /** Decoded in one batch before the first sample: the part of a prompt not in the cells yet, or the token sampled last (1 to `batchSize` tokens). */
    input: number[];
    /** Tokens to hand over at most. */
    limit: number;
    /** Pause once this many handed-over tokens are not yet taken (`consumed`). */
    unconsumedLimit: number;
    /** Give the pool thread back after this long (other pool work queues behind a run). */
    sliceMs: number;
    /** Tokens sampled within this long of the last wake-up of the JavaScript thread wait for the next one (or the run's end). */
    signalIntervalMs: number;
}

export interface DecodeLoopRunResult {
    emitted: number;
    /** Where the next decode goes: the cells now end right before it. */
    position: number;
    reason: "stopped" | "limit" | "eog" | "context-full" | "backpressure" | "slice";
}

export interface DecodeLoopSampling {
    /** 0 or unset: greedy. */
    temperature?: number;
    topK?: number;
    topP?: number;
    minP?: number;
    seed: number;
}

declare const handleBrand: unique symbol;
export type DecodeLoopHandle = {readonly [handleBrand]: true};

/** The addon's exports (see the C++ file for each). */
export interface DecodeLoopAddon {
    attach(addonContext: object): DecodeLoopHandle;
    describe(handle: DecodeLoopHandle): {sequenceContextSize: number; sequences: number; vocabulary: number; batchSize: number};
    configure(handle: DecodeLoopHandle, sampling: DecodeLoopSampling): void;
    run(handle: DecodeLoopHandle, params: DecodeLoopRunParams, onTokens: (tokens: number[]) => void): Promise<DecodeLoopRunResult>;
    stop(handle: DecodeLoopHandle): void;
    consumed(handle: DecodeLoopHandle, count: number): void;
    erase(handle: DecodeLoopHandle, sequence: number, from: number): boolean;
}

export type DecodeLoopAddonStatus =
    | {available: true; file: string; compiledNow: boolean; compileMs?: number}
    | {available: false; reason: string};

const require = createRequire(import.meta.url);

/** native/decode-loop/decode-loop.cpp: in the repo root under tsx, one level up when built into dist/. */
export function decodeLoopSource(): string {
    const candidates = ["../../../../native/decode-loop/decode-loop.cpp", "../../../../../native/decode-loop/decode-loop.cpp"]
        .map((relative) => fileURLToPath(new URL(relative, import.meta.url)));
    return candidates.find((file) => existsSync(file)) ?? candidates[0]!;
}

/** node-llama-cpp's package.json (its `exports` do not list it, so it is looked up on the module path). */
function nodeLlamaCppPackageFile(): string {
    for (const dir of require.resolve.paths("node-llama-cpp") ?? []) {
        const file = path.join(dir, "node-llama-cpp", "package.json");
        if (existsSync(file)) return file;
    }
    throw new Error("node-llama-cpp is not installed");
}

/** Header folders: node-llama-cpp's addon and llama.cpp, node-addon-api, and Node-API's C headers. */
function includeDirs(): {dirs: string[]; nodeLlamaCppVersion: string} {
    const nodeLlamaCppPackage = nodeLlamaCppPackageFile();
    const nodeLlamaCpp = path.dirname(nodeLlamaCppPackage);
    const fromNodeLlamaCpp = createRequire(nodeLlamaCppPackage);
    const addonApi = path.dirname(fromNodeLlamaCpp.resolve("node-addon-api/package.json"));
    let nodeApi = path.join(path.dirname(process.execPath), "..", "include", "node");
    try {
        const cmakeJs = createRequire(fromNodeLlamaCpp.resolve("cmake-js/package.json"));
        nodeApi = path.join(path.dirname(cmakeJs.resolve("node-api-headers/package.json")), "include");
    } catch {
        // Node's own headers (official builds ship include/node) will do.
    }
    const version = (JSON.parse(readFileSync(nodeLlamaCppPackage, "utf8")) as {version: string}).version;
    // node-llama-cpp's own llama.cpp checkout exists only after a local source build; otherwise
    // the headers of the release 3.21.1 bundles, kept beside the loop's source.
    const llamaCpp = path.join(nodeLlamaCpp, "llama", "llama.cpp");
    let llamaHeaders = [path.join(llamaCpp, "include"), path.join(llamaCpp, "ggml", "include")];
    if (!existsSync(path.join(llamaCpp, "include", "llama.h"))) {
        if (version !== VENDORED_HEADERS_FOR)
            throw new Error(`node-llama-cpp ${version} ships no llama.cpp headers and the ones kept here are for ${VENDORED_HEADERS_FOR}`);
        llamaHeaders = [path.join(path.dirname(decodeLoopSource()), "llama.cpp-headers")];
    }
    return {dirs: [addonApi, nodeApi, path.join(nodeLlamaCpp, "llama", "addon"), ...llamaHeaders], nodeLlamaCppVersion: version};
}

/** The node-llama-cpp version whose bundled llama.cpp headers native/decode-loop/llama.cpp-headers holds. */
const VENDORED_HEADERS_FOR = "3.21.1";

/** Where compiled addons are cached: EDGE_LLM_NATIVE_CACHE, else node_modules/.cache/edge-llm. */
export function decodeLoopCacheDir(env: NodeJS.ProcessEnv = process.env): string {
    if (env.EDGE_LLM_NATIVE_CACHE != null && env.EDGE_LLM_NATIVE_CACHE !== "") return path.resolve(env.EDGE_LLM_NATIVE_CACHE);
    const nodeModules = path.dirname(path.dirname(nodeLlamaCppPackageFile()));
    return path.join(nodeModules, ".cache", "edge-llm");
}

function compileArgs(source: string, output: string, includes: string[]): string[] {
    const args = ["-std=c++17", "-O2", "-fPIC", "-shared", "-fexceptions", "-DNAPI_VERSION=7", "-DBUILDING_NODE_EXTENSION",
        "-DNODE_GYP_MODULE_NAME=edge_llm_decode_loop", ...includes.map((dir) => `-I${dir}`), source, "-o", output];
    if (process.platform === "darwin") args.push("-undefined", "dynamic_lookup");
    else args.push("-ldl");
    return args;
}

function run(command: string, args: string[], timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
        execFile(command, args, {timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024}, (error, _stdout, stderr) => {
            if (error == null) resolve();
            else reject(new Error(`${path.basename(command)} failed: ${(stderr || error.message).trim().split("\n").slice(-8).join("\n")}`));
        });
    });
}

async function loadOrCompile(env: NodeJS.ProcessEnv): Promise<{addon?: DecodeLoopAddon; status: DecodeLoopAddonStatus}> {
    const setting = env.EDGE_LLM_NATIVE_LOOP?.toLowerCase();
    if (setting === "off" || setting === "0" || setting === "false")
        return {status: {available: false, reason: "EDGE_LLM_NATIVE_LOOP=off"}};
    if (process.platform === "win32")
        return {status: {available: false, reason: "not built on Windows yet (the loop finds libllama with dladdr/dlopen)"}};
    const source = decodeLoopSource();
    if (!existsSync(source)) return {status: {available: false, reason: `${source} is missing`}};

    const {dirs, nodeLlamaCppVersion} = includeDirs();
    const compiler = env.CXX != null && env.CXX !== "" ? env.CXX : "c++";
    const key = createHash("sha256")
        .update(await readFile(source))
        .update(`${nodeLlamaCppVersion}|${process.platform}-${process.arch}|${compiler}|${compileArgs("", "", dirs).join(" ")}`)
        .digest("hex").slice(0, 16);
    const file = path.join(decodeLoopCacheDir(env), `decode-loop-${key}.node`);
    let compiledNow = false;
    let compileMs: number | undefined;
    if (!existsSync(file)) {
        const started = performance.now();
        await mkdir(path.dirname(file), {recursive: true});
        // Parallel processes (test workers) may compile at once; each renames its own finished file.
        const partial = `${file}.${process.pid}.${Date.now()}.tmp`;
        try {
            await run(compiler, compileArgs(source, partial, dirs), 120_000);
            await rename(partial, file);
        } catch (error) {
            await rm(partial, {force: true});
            return {status: {available: false, reason: `compiling ${path.basename(source)}: ${(error as Error).message}`}};
        }
        compiledNow = true;
        compileMs = Math.round(performance.now() - started);
    }
    try {
        const addon = require(file) as DecodeLoopAddon;
        return {addon, status: {available: true, file, compiledNow, ...compileMs == null ? {} : {compileMs}}};
    } catch (error) {
        return {status: {available: false, reason: `loading ${file}: ${(error as Error).message}`}};
    }
}

let loading: Promise<{addon?: DecodeLoopAddon; status: DecodeLoopAddonStatus}> | undefined;

/** The addon, compiled on first call in this process (and cached on disk for the next). */
export function loadDecodeLoopAddon(env: NodeJS.ProcessEnv = process.env): Promise<{addon?: DecodeLoopAddon; status: DecodeLoopAddonStatus}> {
    loading ??= loadOrCompile(env).catch((error: unknown) => ({status: {available: false as const, reason: (error as Error).message}}));
    return loading;
}
