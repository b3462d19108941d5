/**
 * Builds llama.cpp's own `llama-bench` and `llama-server` from the source node-llama-cpp bundles
 * (the same llama.cpp release edge-llm runs), for this CPU (GGML_NATIVE, OpenMP), offline.
 * `npm run bench` runs them next to edge-llm when they exist, so the comparison with llama.cpp
 * is measured, not quoted.
 *
 *   npx tsx scripts/build-llama-tools.ts            # → .cache/llama.cpp-tools/build/bin/llama-{bench,server} (~10 min on 2 cores)
 */
import {spawn} from "node:child_process";
import {existsSync} from "node:fs";
import {mkdir} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const toolsDir = path.join(root, ".cache/llama.cpp-tools");
export const llamaBenchPath = path.join(toolsDir, "build", "bin", "llama-bench");
/** llama.cpp's own HTTP server, the bar edge-llm's server is held to. */
export const llamaServerPath = path.join(toolsDir, "build", "bin", "llama-server");

function run(command: string, args: string[], cwd = root): Promise<void> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, {cwd, stdio: "inherit"});
        child.once("error", reject);
        child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} exited with ${code}`))));
    });
}

/** The llama.cpp source: node-llama-cpp's checkout when `source download` made one, else a clone of the git bundle it ships. */
async function sourceDir(): Promise<string> {
    const bundled = path.join(root, "node_modules/node-llama-cpp/llama");
    if (existsSync(path.join(bundled, "llama.cpp/CMakeLists.txt"))) return path.join(bundled, "llama.cpp");
    const clone = path.join(root, ".cache/llama.cpp-src");
    if (!existsSync(path.join(clone, "CMakeLists.txt"))) {
        await mkdir(path.dirname(clone), {recursive: true});
        await run("git", ["clone", "--quiet", path.join(bundled, "gitRelease.bundle"), clone]);
    }
    return clone;
}

async function main() {
    const source = await sourceDir();
    const build = path.join(toolsDir, "build");
    console.error(`llama.cpp source: ${source}`);
    await run("cmake", ["-S", source, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DGGML_OPENMP=ON",
        "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DBUILD_SHARED_LIBS=OFF"
    ]);
    await run("cmake", ["--build", build, "--target", "llama-bench", "llama-server", "-j", String(os.availableParallelism())]);
    console.error(`built ${llamaBenchPath} and ${llamaServerPath}`);
}

if (process.argv[1] != null && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
