import path from "node:path";
import type {Command} from "commander";
import {startServer} from "../api/server.js";
import type {LoadModelOptions} from "../backends/backend.js";
import {loadableBuildRecord as loadableRecordFile, maybeStartNativeBuild} from "../backends/llama-cpp/auto-native-build.js";
import {LlamaCppBackend} from "../backends/llama-cpp/backend.js";
import {chooseWaitPolicy} from "../backends/llama-cpp/wait-policy.js";
import {readPowerOnce} from "../power/sensors/index.js";
import {gpuSupported, relaunch, singlePoolReason} from "./single-pool.js";
import {MlxBackend} from "../backends/mlx/backend.js";
import {MlxUnavailableError, mlxPlatformProblem} from "../backends/mlx/loader.js";
import {loadSettings, SettingsError} from "../config/load.js";
import {accessFromSettings} from "../api/security/from-settings.js";
import type {Settings} from "../config/schema.js";
import {createLogger, type Logger} from "../logger.js";
import {resolveModel} from "../models/default-model.js";
import {Runtime, type RuntimeOptions} from "../runtime/runtime.js";
import {PowerService, type PowerServiceOptions} from "../power/service.js";
import {createModelPool} from "./serve-models.js";
import {ModelLoadError} from "../runtime/errors.js";
import type {GovernorThresholdsInput} from "../power/governor-policy.js";
import type {ContextOverflowPolicy} from "../runtime/types.js";

interface ServeFlags {
    model?: string;
    host?: string;
    port?: string;
    threads?: string;
    autotuneThreads?: boolean;
    parallel?: string;
    ctxSize?: string;
    contextOverflow?: string;
    kvCacheType?: string;
    alias?: string;
    modelsDir?: string;
    gpu?: string;
    config?: string;
    logLevel?: string;
    draft?: string;
    speculation?: string;
    maxLoadedModels?: string;
    modelTtl?: string;
    backend?: string;
    apiKeyFile?: string;
    insecurePublic?: boolean;
    corsOrigin?: string;
    rateLimit?: string;
    shutdownGrace?: string;
    maxBodyBytes?: string;
    maxWsFrameBytes?: string;
}

/** Seconds a shutdown may take past its grace period (persisting sessions, freeing the model) before the process exits anyway. */
const SHUTDOWN_CLEANUP_SECONDS = 15;

export function registerServe(program: Command) {
    program.command("serve")
        .description("serve a GGUF model over the OpenAI-compatible HTTP API and the WebSocket API")
        .option("-m, --model <path>", "GGUF model file (default: the first *.gguf in the models folder, else the catalog's default is downloaded)")
        .option("--host <host>", "address to listen on (default 127.0.0.1)")
        .option("-p, --port <port>", "port to listen on; 0 picks a free one (default 8080)")
        .option("-t, --threads <n>", "CPU threads for decoding (default: chosen for this machine and model)")
        .option("--no-autotune-threads", "with --threads unset, use a size heuristic instead of measuring thread counts at a model's first load")
        .option("--parallel <n>", "requests decoded side by side (default 4)")
        .option("-c, --ctx-size <tokens>", "context tokens per sequence (default: the model's, at most 2048)")
        .option("--context-overflow <policy>", "prompt or answer longer than the context: error, truncate or slide (default error)")
        .option("--kv-cache-type <type>", "KV cache element type: f16, q8_0 or q4_0 (default f16)")
        .option("--alias <name>", "model name clients use (default: the file name without .gguf)")
        .option("--models-dir <dir>", "folder of models (default ./models)")
        .option("--gpu <mode>", "auto (Metal, CUDA or Vulkan when present) or cpu")
        .option("--draft <path>", "small model with the same tokenizer, drafting for speculative decoding")
        .option("--speculation <mode>", "draft, prompt-lookup or off (default: draft with --draft, else off)")
        .option("--max-loaded-models <n>", "models kept loaded at once; another one replaces the least recently used idle one (default 1)")
        .option("--model-ttl <seconds>", "unload a model loaded on demand after this long without requests; 0 = never (default 300)")
        .option("--backend <name>", "llama.cpp (default) or mlx (Apple Silicon, needs @mlx-node/lm and an MLX model folder)")
        .option("--api-key-file <file>", "file of API keys, one per line; clients send 'Authorization: Bearer <key>' (also EDGE_LLM_API_KEYS=k1,k2)")
        .option("--insecure-public", "allow listening on a non-loopback address without API keys")
        .option("--cors-origin <origins>", "browser origins allowed to call the API, comma-separated, or * (default: none)")
        .option("--rate-limit <per-minute>", "requests per minute per API key (or address) on /v1 and the WebSocket (default: no limit)")
        .option("--shutdown-grace <seconds>", "on SIGTERM/SIGINT, time streams in flight get to finish (default 10)")
        .option("--max-body-bytes <bytes>", "largest accepted HTTP request body (default 4 MiB)")
        .option("--max-ws-frame-bytes <bytes>", "largest accepted WebSocket frame (default 1 MiB)")
        .option("--config <file>", "config file (default ./hono.config.ts)")
        .option("--log-level <level>", "trace, debug, info, warn, error or silent")
        .action((flags: ServeFlags) => serve(flags));
}

async function serve(flags: ServeFlags) {
    const settings = await loadSettings({
        configFile: flags.config,
        flags: {
            model: flags.model, host: flags.host, port: flags.port, threads: flags.threads, parallel: flags.parallel,
            ctxSize: flags.ctxSize, modelAlias: flags.alias, modelsDir: flags.modelsDir, gpu: flags.gpu, logLevel: flags.logLevel,
            contextOverflow: flags.contextOverflow, kvCacheType: flags.kvCacheType, draft: flags.draft, speculation: flags.speculation,
            maxLoadedModels: flags.maxLoadedModels, modelIdleTtlSeconds: flags.modelTtl, backend: flags.backend,
            // Commander defaults negatable flags to true: pass only an explicit --no-autotune-threads.
            autotuneThreads: flags.autotuneThreads === false ? false : undefined,
            apiKeyFile: flags.apiKeyFile, insecurePublic: flags.insecurePublic, corsOrigins: flags.corsOrigin,
            rateLimitPerMinute: flags.rateLimit, shutdownGraceSeconds: flags.shutdownGrace,
            maxBodyBytes: flags.maxBodyBytes, maxWsFrameBytes: flags.maxWsFrameBytes
        }
    });
    // main.ts has relaunched with one pool thread before loading this module where that applies
    // (early-relaunch.ts); settings given only to this function (tests) get the same treatment.
    const singlePool = await singlePoolReason(settings, await loadableBuildRecord(settings), gpuSupported);
    if (singlePool != null) {
        createLogger(settings.logLevel).debug(`relaunching with UV_THREADPOOL_SIZE=1: ${singlePool}`);
        process.exit(await relaunch({UV_THREADPOOL_SIZE: "1"}));
    }
    const access = await accessFromSettings(settings).catch((error: unknown) => {
        throw new SettingsError((error as Error).message);
    });
    const logger = createLogger(settings.logLevel);
    if (settings.backend === "mlx") {
        const problem = mlxPlatformProblem();
        if (problem != null) throw new MlxUnavailableError(problem);
        if (settings.model == null) throw new MlxUnavailableError("--backend mlx needs --model pointing at an MLX model folder (config.json + *.safetensors)");
    }
    const model = await resolveModel({
        model: settings.model,
        modelsDir: settings.modelsDir,
        downloadTimeoutSeconds: settings.downloadTimeoutSeconds,
        log: (message) => logger.info(message)
    });

    // Thread limits are relative to each model's own count, known once it is loaded.
    const models = await createModelPool(settings, logger, model.path, () => power?.apply());
    const power = createPowerService(settings, models, logger);
    // Load the default model now; listen before it is loaded, so health checks see "loading" (503) instead of a refused connection.
    const loading = models.preload();
    loading.catch(() => {}); // awaited below, once the server listens
    const server = await startServer({
        models,
        host: settings.host,
        port: settings.port,
        maxBodyBytes: settings.maxBodyBytes,
        maxWsFrameBytes: settings.maxWsFrameBytes,
        power,
        adminToken: settings.adminToken,
        logger,
        access
    });
    logger.info({url: server.url, model: model.path, apiKeys: access.apiKeys?.size ?? 0, corsOrigins: access.corsOrigins},
        `listening on ${server.url}, loading ${model.path}` + (access.requiresKey ? " (API key required)" : ""));

    let shuttingDown = false;
    let firstSignalAt = 0;
    const shutdown = (signal: NodeJS.Signals) => {
        if (shuttingDown) {
            // A supervisor that signals every process of the group or cgroup delivers the same
            // signal twice at once (here and through the parent of a relaunch); only a later one means "now".
            if (Date.now() - firstSignalAt < 1000) return;
            logger.warn(`${signal} again: exiting without waiting`);
            process.exit(1);
        }
        shuttingDown = true;
        firstSignalAt = Date.now();
        const graceSeconds = settings.shutdownGraceSeconds;
        logger.info(`${signal}: shutting down; streams in flight get ${graceSeconds} s to finish`);
        setTimeout(() => {
            logger.error(`shutdown took longer than ${graceSeconds + SHUTDOWN_CLEANUP_SECONDS} s; exiting`);
            process.exit(1);
        }, (graceSeconds + SHUTDOWN_CLEANUP_SECONDS) * 1000).unref();
        void (async () => {
            power?.stop();
            // No new connections; requests on open ones get 503.
            server.stopAccepting();
            // Streams finish, or are ended as cancelled at the deadline (a final chunk, a `done` frame); sessions persist.
            await models.dispose({graceMs: graceSeconds * 1000});
            await server.close();
        })().then(
            () => process.exit(0),
            (error: unknown) => {
                logger.error(`shutdown failed: ${(error as Error).message}`);
                process.exit(1);
            }
        );
    };
    process.on("SIGINT", shutdown);
    process.on("SIGTERM", shutdown);
    // Relaunched (single-pool.ts): if the parent is gone (killed outright), stop serving rather than linger.
    if (process.env.EDGE_LLM_RELAUNCHED != null) {
        const parent = process.ppid;
        setInterval(() => {
            if (process.ppid !== parent) shutdown("SIGTERM");
        }, 2000).unref();
    }

    let description;
    try {
        description = await loading;
    } catch (error) {
        if (shuttingDown) return;
        // The server stays up: /health reports the failure (503) and requests get 503 with the reason,
        // so a supervisor or a user sees why instead of a process that keeps restarting.
        logger.error({model: model.path}, `Cannot load model ${model.path}: ${error instanceof ModelLoadError ? error.reason : (error as Error).message}. ` +
            `Serving errors until restarted with a working model.`);
        return;
    }
    if (shuttingDown) return;
    logger.info(
        {
            url: server.url,
            model: description.id,
            path: description.path,
            threads: description.threads,
            threadsReason: description.threadsReason,
            ctx: description.contextSize,
            parallel: description.parallel,
            accelerator: description.accelerator
        },
        `ready: ${description.id} at ${server.url} — threads ${description.threads} (${description.threadsReason}), ` +
        `ctx ${description.contextSize}, parallel ${description.parallel}, ${description.accelerator}`
    );
    if (settings.backend === "llama.cpp") {
        const build = await maybeStartNativeBuild({
            setting: settings.nativeBuild, record: path.resolve(settings.nativeBuildRecord),
            gpu: description.accelerator !== "cpu", compareModel: description.path, log: (message) => logger.info(message)
        });
        if (!build.start) logger.debug(`native build: ${build.reason}`);
    }
}

/** A runtime on the llama.cpp backend with its native logs routed through `logger`. Shared with `chat`. */
/** The power governor for this machine's sensors (or `power.sensorRoot`), started; none when disabled. */
export function createPowerService(settings: Settings, runtime: PowerServiceOptions["runtime"], logger: Logger): PowerService | undefined {
    if (!settings.power.enabled) return undefined;
    return new PowerService({
        runtime,
        sensorRoot: settings.power.sensorRoot === "/sys" ? undefined : settings.power.sensorRoot,
        pollIntervalMs: settings.power.pollIntervalMs,
        override: settings.power.override,
        thresholds: settings.power.thresholds as GovernorThresholdsInput | undefined,
        limits: settings.power.limits,
        onChange: (status, previous) => logger[status.level === "nominal" ? "info" : "warn"](
            {level: status.level, previous, limits: status.limits}, `power: ${previous} → ${status.level} (${status.reason})`),
        onError: (error, where) => logger.debug({err: error}, `power: ${where}`)
    }).start();
}

/** `defaultOverflow` applies when no setting names a context-overflow policy. */
export async function createRuntime(settings: Settings, logger: Logger, defaultOverflow: ContextOverflowPolicy = "error"): Promise<Runtime> {
    return new Runtime(await createBackend(settings, logger), runtimeOptions(settings, logger, defaultOverflow));
}

/** The backend the settings name: llama.cpp (default) or MLX. */
export async function createBackend(settings: Settings, logger: Logger) {
    return settings.backend === "mlx" ? await MlxBackend.create() : await createLlamaCppBackend(settings, logger);
}

/** What every runtime gets from the settings (the model pool's runtimes too). */
export function runtimeOptions(settings: Settings, logger: Logger, defaultOverflow: ContextOverflowPolicy = "error"): RuntimeOptions {
    return {
        maxQueued: settings.maxQueued,
        speculation: settings.speculation,
        contextOverflow: {policy: settings.contextOverflow ?? defaultOverflow, sinkTokens: settings.sinkTokens, slideTokens: settings.slideTokens},
        kv: {
            blockSize: settings.kvBlockSize,
            spillDir: settings.kvSpill ? path.resolve(settings.kvSpillDir) : undefined,
            spillBudgetBytes: settings.kvSpillBudgetMiB * 1024 * 1024,
            spillMaxStates: settings.kvSpillMaxStates,
            persistOnShutdown: settings.persistSessions
        },
        onEvent: (event, details) => logger.debug(details, `kv: ${event}`)
    };
}

export function modelLoadOptions(settings: Settings, modelPath: string, signal?: AbortSignal): LoadModelOptions {
    return {
        path: modelPath,
        id: settings.modelAlias ?? path.basename(modelPath).replace(/\.gguf$/i, ""),
        parallel: settings.parallel,
        contextSize: settings.ctxSize,
        kvBudget: settings.kvBudgetTokens != null || settings.kvBudgetMiB != null ? {tokens: settings.kvBudgetTokens, mib: settings.kvBudgetMiB} : undefined,
        threads: settings.threads,
        threadTuning: settings.autotuneThreads ? {cacheFile: settings.threadTuningFile} : undefined,
        kvCacheType: settings.kvCacheType,
        flashAttention: settings.flashAttention,
        draftPath: settings.draft,
        memoryFit: settings.memoryFit,
        memoryLimitBytes: settings.memoryLimitMiB == null ? undefined : settings.memoryLimitMiB * 1024 * 1024,
        signal
    };
}

/**
 * The recorded local build to load, unless a build is running (node-llama-cpp would wait on its
 * lock; the prebuilt binary decodes then) or it measured no faster than the prebuilt binary.
 */
export async function loadableBuildRecord(settings: Settings) {
    return (await loadableRecordFile(path.resolve(settings.nativeBuildRecord), settings.nativeBuild)).record;
}

/** llama.cpp, with the local build scripts/build-backend.ts recorded when it is to be loaded (and its OpenMP wait policy). */
export async function createLlamaCppBackend(settings: Settings, logger: Logger) {
    const {building, record: nativeBuild, skipped} = await loadableRecordFile(path.resolve(settings.nativeBuildRecord), settings.nativeBuild);
    // node-llama-cpp waits on the lock of a build in progress; the prebuilt binary runs until the build is done.
    if (building != null) logger.info(`a native llama.cpp build is running (pid ${building}); the prebuilt binary runs until it is done`);
    if (skipped != null) logger.info(skipped);
    const power = nativeBuild == null || settings.waitPolicy !== "auto" ? undefined
        : await readPowerOnce({sensorRoot: settings.power.sensorRoot === "/sys" ? undefined : settings.power.sensorRoot});
    const backend = await LlamaCppBackend.create({
        gpu: settings.gpu === "cpu" ? false : "auto",
        logger: (level, message) => logger[level](message),
        nativeBuild,
        nativeBuildSkipped: skipped,
        waitPolicy: chooseWaitPolicy({setting: settings.waitPolicy, onBattery: power?.battery?.discharging, lowPowerMode: power?.lowPowerMode})
    });
    logger.debug({build: backend.build}, `llama.cpp: ${backend.build.type} (${backend.build.reason})`);
    if (backend.build.waitPolicy != null) logger.info(`OpenMP wait policy: ${backend.build.waitPolicy.policy} (${backend.build.waitPolicy.reason})`);
    return backend;
}
