import {stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type {Command} from "commander";
import type {LlamaBuildInfo} from "../backends/llama-cpp/backend.js";
import {chooseRecordedBuild} from "../backends/llama-cpp/build-comparison.js";
import {currentPlatform, readBuildRecord, readPresets, type NativeBuildRecord} from "../backends/llama-cpp/native-build.js";
import {chooseThreads} from "../backends/llama-cpp/threads.js";
import {MLX_PACKAGE, mlxPlatformProblem} from "../backends/mlx/loader.js";
import {loadSettings} from "../config/load.js";
import {createLogger} from "../logger.js";
import {createLlamaCppBackend} from "./serve.js";
import {gpuSupported, singlePoolReason} from "./single-pool.js";
import {loadDecodeLoopAddon} from "../backends/llama-cpp/native-loop/addon.js";
import type {Settings} from "../config/schema.js";
import {formatBytes, listModelFiles} from "../models/registry.js";

interface DoctorFlags {
    config?: string;
    gpu?: string;
    model?: string;
    modelsDir?: string;
    json?: boolean;
}

/** What `edge-llm doctor` finds: the backend that would run, its binary, the GPU, memory, threads, and why. */
export interface DoctorReport {
    platform: string;
    backend: {name: string; reason: string};
    build: LlamaBuildInfo & {record?: string};
    gpu: {type: string; devices: string[]; vramTotalBytes: number; vramFreeBytes: number; reason: string};
    memory: {ramTotalBytes: number; ramFreeBytes: number};
    cpu: {cores: number; mathCores: number; model: string};
    threads: {threads: number; reason: string; forModel?: string};
    /** libuv pool threads serve and chat decode with (node-llama-cpp runs each decode and sampling step as a pool job). */
    pool: {threads: number | "default"; reason: string};
    /** Whether a lone stream decodes in edge-llm's native loop (compiled on first use) or node-llama-cpp's. */
    decodeLoop: {kind: "native" | "binding"; reason: string};
    mlx: {available: boolean; reason: string};
    buildPresets: {name: string; fitsThisMachine: boolean; description: string}[];
}

export function registerDoctor(program: Command) {
    program.command("doctor")
        .description("show the backend, llama.cpp build, GPU, memory and threads edge-llm would use here, and why")
        .option("--gpu <mode>", "auto or cpu, as for serve")
        .option("-m, --model <path>", "model to choose threads for (default: the first *.gguf in the models folder)")
        .option("--models-dir <dir>", "folder of models (default ./models)")
        .option("--config <file>", "config file (default ./hono.config.ts)")
        .option("--json", "print JSON")
        .action(async (flags: DoctorFlags) => {
            const report = await diagnose(flags);
            process.stdout.write(flags.json === true ? `${JSON.stringify(report, null, 2)}\n` : render(report));
        });
}

async function diagnose(flags: DoctorFlags): Promise<DoctorReport> {
    const settings = await loadSettings({configFile: flags.config, flags: {gpu: flags.gpu, model: flags.model, modelsDir: flags.modelsDir}});
    const recordFile = path.resolve(settings.nativeBuildRecord);
    const record = await readBuildRecord(recordFile);
    const backend = await createLlamaCppBackend(settings, createLogger("silent"));
    try {
        const llama = backend.llama;
        const [devices, vram, ram] = await Promise.all([llama.getGpuDeviceNames(), llama.getVramState(), llama.getRamState()]);
        const model = settings.model ?? (await listModelFiles(settings.modelsDir))[0];
        const modelSize = model == null ? undefined : await stat(model).then((info) => info.size, () => undefined);
        const threads = chooseThreads({requested: settings.threads, mathCores: llama.cpuMathCores, modelSizeBytes: modelSize ?? Number.MAX_SAFE_INTEGER, onGpu: llama.gpu !== false});
        const mlxProblem = mlxPlatformProblem();
        const platform = currentPlatform();
        const presets = await readPresets().catch(() => ({}));
        return {
            platform,
            backend: settings.backend === "mlx"
                ? {name: "mlx", reason: mlxProblem ?? `backend setting "mlx" (${MLX_PACKAGE})`}
                : {name: "llama.cpp", reason: "backend setting \"llama.cpp\" (the default)"},
            build: {...backend.build, ...(record == null ? {} : {record: recordFile})},
            gpu: {
                type: llama.gpu === false ? "none" : llama.gpu,
                devices,
                vramTotalBytes: vram.total,
                vramFreeBytes: vram.free,
                reason: settings.gpu === "cpu" ? "--gpu cpu / gpu \"cpu\": the GPU is never used"
                    : llama.gpu === false ? "gpu \"auto\" found no Metal, CUDA or Vulkan device this binary can use"
                        : `gpu "auto" picked ${llama.gpu}, the best available of Metal, CUDA and Vulkan`
            },
            memory: {ramTotalBytes: ram.total, ramFreeBytes: ram.free},
            cpu: {cores: os.cpus().length, mathCores: llama.cpuMathCores, model: os.cpus()[0]?.model ?? "unknown"},
            threads: {...threads, ...(model == null ? {} : {forModel: path.basename(model)})},
            pool: await poolDecision(settings, chooseRecordedBuild(record, settings.nativeBuild).record),
            decodeLoop: await decodeLoopDecision(),
            mlx: {available: mlxProblem == null, reason: mlxProblem ?? `Apple Silicon: --backend mlx loads ${MLX_PACKAGE} if it is installed`},
            buildPresets: Object.entries(presets).map(([name, preset]) => ({name, fitsThisMachine: preset.platforms.includes(platform), description: preset.description}))
        };
    } finally {
        await backend.dispose();
    }
}

/** The native decode loop's addon here: compiled (now, if it was not yet) and loadable, or why not. */
async function decodeLoopDecision(): Promise<DoctorReport["decodeLoop"]> {
    const {status} = await loadDecodeLoopAddon();
    return status.available
        ? {kind: "native", reason: `${status.compiledNow ? `compiled now in ${status.compileMs} ms` : "compiled"}: ${status.file}; a stream alone on a model decodes in it`}
        : {kind: "binding", reason: `node-llama-cpp's loop decodes every stream: ${status.reason}`};
}

/** What serve and chat do about libuv's pool here (src/cli/single-pool.ts). */
async function poolDecision(settings: Settings, record: NativeBuildRecord | undefined): Promise<DoctorReport["pool"]> {
    const fromEnvironment = process.env.UV_THREADPOOL_SIZE;
    if (fromEnvironment != null) return {threads: Number(fromEnvironment) || "default", reason: "UV_THREADPOOL_SIZE set in the environment"};
    const {EDGE_LLM_RELAUNCHED: _relaunched, ...env} = process.env;
    const reason = await singlePoolReason(settings, record, gpuSupported, env);
    return reason != null
        ? {threads: 1, reason: `serve and chat relaunch with UV_THREADPOOL_SIZE=1: ${reason}`}
        : {threads: "default", reason: "decoding on a GPU, with several models loaded at once, on one core, or with MLX: serve keeps libuv's pool"};
}

function render(report: DoctorReport): string {
    const build = report.build;
    const lines = [
        `platform   ${report.platform}`,
        `backend    ${report.backend.name} — ${report.backend.reason}`,
        `build      ${build.type === "localBuild" ? `local build${build.preset == null ? "" : ` (preset ${build.preset})`}` : "prebuilt"}, ${build.llamaCppRelease} — ${build.reason}`,
        ...(Object.keys(build.cmakeOptions).length > 0 ? [`cmake      ${Object.entries(build.cmakeOptions).map(([key, value]) => `${key}=${value}`).join(" ")}`] : []),
        ...(build.waitPolicy == null ? [] : [`wait       OpenMP ${build.waitPolicy.policy}${Object.keys(build.waitPolicy.env).length > 0 ? ` (${Object.entries(build.waitPolicy.env).map(([key, value]) => `${key}=${value}`).join(" ")})` : ""} — ${build.waitPolicy.reason}`]),
        `gpu        ${report.gpu.type}${report.gpu.devices.length > 0 ? ` (${report.gpu.devices.join(", ")}, ${formatBytes(report.gpu.vramFreeBytes)} free of ${formatBytes(report.gpu.vramTotalBytes)})` : ""} — ${report.gpu.reason}`,
        `memory     ${formatBytes(report.memory.ramFreeBytes)} free of ${formatBytes(report.memory.ramTotalBytes)} RAM`,
        `cpu        ${report.cpu.model}, ${report.cpu.cores} logical cores, ${report.cpu.mathCores} for math`,
        `threads    ${report.threads.threads}${report.threads.forModel == null ? " (for a large model)" : ` for ${report.threads.forModel}`} — ${report.threads.reason}`,
        `pool       ${report.pool.threads === "default" ? "libuv's default (4)" : report.pool.threads} libuv thread${report.pool.threads === 1 ? "" : "s"} — ${report.pool.reason}`,
        `decode     ${report.decodeLoop.kind === "native" ? "edge-llm's native loop" : "node-llama-cpp's loop"} — ${report.decodeLoop.reason}`,
        `mlx        ${report.mlx.available ? "available" : "not available"} — ${report.mlx.reason}`,
        "",
        "Local builds (npx tsx scripts/build-backend.ts <preset>):",
        ...report.buildPresets.map((preset) => `  ${preset.name.padEnd(18)}${preset.fitsThisMachine ? "" : "(other platforms) "}${preset.description}`)
    ];
    return `${lines.join("\n")}\n`;
}
