import path from "node:path";
import {stat} from "node:fs/promises";
import {getLlama, type Llama, type LlamaContext, type LlamaModel, LlamaLogLevel, NoBinaryFoundError} from "node-llama-cpp";
import type {Backend, BackendModel, LoadModelOptions, ModelDescription} from "../backend.js";
import {chooseThreads, type ThreadChoice} from "./threads.js";
import {describeComparison} from "./build-comparison.js";
import {describeTuning, machineKey, threadCandidates, ThreadTuningCache, tuneDecode} from "./thread-tuning.js";
import {GrammarCache} from "./constraint.js";
import {LlamaCppModel} from "./model.js";
import {loadDecodeLoopAddon} from "./native-loop/addon.js";
import {NativeDecodeLoop} from "./native-loop/decode-loop.js";
import {resolveModelChatWrapper} from "./chat-wrapper.js";
import {canShiftKvCache, kvBytesPerToken, kvCacheContextOptions, KvCacheTypeError, readKvShape} from "./kv-cache.js";
import {assertReadableGguf} from "../../models/gguf-check.js";
import {preflightModel} from "./preflight.js";
import {contextBatchSize} from "./batch-size.js";
import {applyWaitPolicy, type WaitPolicyChoice} from "./wait-policy.js";
import {modelFingerprint} from "../../models/fingerprint.js";
import {assertCompatibleDraft} from "./draft-model.js";
import type {NativeBuildRecord} from "./native-build.js";
import {decideMemoryFit, estimateMemory, readModelInfo} from "../../models/memory-fit.js";

/** llama.cpp warnings about GGUF metadata quirks that change nothing for the user. */
const NOISE = /bad special token|special_eos_id is not in special_eog_ids|control token: .* is not marked as EOG/;

/** Context per sequence when neither the user nor the model says otherwise. */
const DEFAULT_MAX_CONTEXT_SIZE = 2048;

export interface LlamaCppBackendOptions {
    /** "auto" picks Metal, CUDA or Vulkan when present, else CPU; false forces CPU. */
    gpu?: "auto" | false;
    logger?: (level: "debug" | "info" | "warn" | "error", message: string) => void;
    /** A local source build recorded by scripts/build-backend.ts, used instead of the prebuilt binary when it loads. */
    nativeBuild?: NativeBuildRecord;
    /** Why a recorded build is not loaded (it measured no faster than the prebuilt binary). */
    nativeBuildSkipped?: string;
    /** How OpenMP threads wait between steps (wait-policy.ts); applied only to a local build with OpenMP. */
    waitPolicy?: WaitPolicyChoice;
}

/** Which llama.cpp binary runs, and why (`edge-llm doctor`, the start-up log). */
export interface LlamaBuildInfo {
    type: "prebuilt" | "localBuild";
    /** The native/presets.json preset of a local build. */
    preset?: string;
    cmakeOptions: Readonly<Record<string, string>>;
    llamaCppRelease: string;
    reason: string;
    /** The OpenMP wait policy of a local OpenMP build (libgomp reads it once, at load). */
    waitPolicy?: {policy: WaitPolicyChoice["policy"]; env: Record<string, string>; reason: string};
}

/** llama.cpp through node-llama-cpp's prebuilt (or locally built) binaries. */
export class LlamaCppBackend implements Backend {
    readonly name = "llama.cpp";
    /** Models loaded and not yet disposed: while there are any, a load must not block the event loop for long. */
    private liveModels = 0;

    private constructor(
        readonly llama: Llama,
        private readonly grammars: GrammarCache,
        private readonly log: LlamaCppBackendOptions["logger"],
        readonly build: LlamaBuildInfo,
        /** Offload every layer explicitly: the local build's backend (OpenCL, Hexagon) is not a node-llama-cpp GPU type. */
        private readonly offloadAll: boolean
    ) {}

    static async create(options: LlamaCppBackendOptions = {}) {
        const log = options.logger;
        const record = options.nativeBuild;
        let fallbackReason = options.nativeBuildSkipped;
        if (record != null && options.gpu === false && record.gpu !== false)
            fallbackReason = `the GPU is off (--gpu cpu) and the recorded local build "${record.preset}" uses ${record.gpu}, so the prebuilt CPU binary runs`;
        else if (record != null) {
            try {
                // Before the binary (and libgomp with it) loads.
                const openMp = record.cmakeOptions.GGML_OPENMP === "ON" && options.waitPolicy != null;
                if (openMp) applyWaitPolicy(options.waitPolicy!);
                const llama = await LlamaCppBackend.getLlama(options, {gpu: record.gpu, cmakeOptions: record.cmakeOptions, usePrebuiltBinaries: false});
                const build = describeBuild(llama, record.preset, `local build of preset "${record.preset}" (scripts/build-backend.ts, ${record.builtAt})` +
                    (record.comparison == null ? "" : `; against the prebuilt binary: ${describeComparison(record.comparison)}`));
                if (openMp) build.waitPolicy = {...options.waitPolicy!};
                return new LlamaCppBackend(llama, new GrammarCache(llama), log, build, record.offload === true);
            } catch (error) {
                const why = error instanceof NoBinaryFoundError
                    ? `no local binary with its options exists (build it: npx tsx scripts/build-backend.ts ${record.preset})`
                    : (error as Error).message.split("\n")[0];
                fallbackReason = `the recorded local build "${record.preset}" did not load: ${why}; the prebuilt binary runs`;
                log?.("warn", fallbackReason);
            }
        }
        const llama = await LlamaCppBackend.getLlama(options, {gpu: options.gpu ?? "auto"});
        const reason = fallbackReason ?? (llama.buildType === "localBuild"
            ? "a local build node-llama-cpp made earlier matches these options"
            : `node-llama-cpp's prebuilt binary for ${process.platform}-${process.arch}${llama.gpu === false ? "" : ` with ${llama.gpu}`}; no local build recorded`);
        return new LlamaCppBackend(llama, new GrammarCache(llama), log, describeBuild(llama, undefined, reason), false);
    }

    private static getLlama(options: LlamaCppBackendOptions, binary: {gpu: "auto" | false | "vulkan" | "cuda" | "metal"; cmakeOptions?: Record<string, string>; usePrebuiltBinaries?: boolean}) {
        const log = options.logger;
        return getLlama({
            gpu: binary.gpu,
            cmakeOptions: binary.cmakeOptions,
            usePrebuiltBinaries: binary.usePrebuiltBinaries,
            // Never compile at run time from a request path; the prebuilt binaries cover the platforms we ship for.
            build: "never",
            logLevel: LlamaLogLevel.warn,
            logger: log == null ? undefined : (level, message) => {
                const text = message.trimEnd();
                if (text.length === 0) return;
                const severity = level === LlamaLogLevel.error || level === LlamaLogLevel.fatal ? "error" : level === LlamaLogLevel.warn ? "warn" : "debug";
                log(severity === "warn" && NOISE.test(text) ? "debug" : severity, text);
            }
        });
    }

    get accelerator(): string {
        return this.llama.gpu === false ? "cpu" : this.llama.gpu;
    }

    async loadModel(options: LoadModelOptions): Promise<BackendModel> {
        await preflightModel(options.path, this.llama);
        const fileSizeBytes = (await stat(options.path)).size;
        const onGpu = this.llama.gpu !== false;
        let threads = chooseThreads({
            requested: options.threads,
            mathCores: this.llama.cpuMathCores,
            modelSizeBytes: fileSizeBytes,
            onGpu
        });
        const tune = options.threads == null && !onGpu && options.threadTuning != null;
        const candidates = threadCandidates(this.llama.cpuMathCores);
        // Contexts are capped at the thread count they were created with; the live limit
        // (`llama.maxThreads`) is what the power governor lowers later.
        this.llama.maxThreads = tune ? Math.max(...candidates) : threads.threads;
        const memory = await this.fitMemory(options, onGpu);

        const model = await this.llama.loadModel({
            modelPath: options.path, loadSignal: options.signal, useMmap: useMmap(onGpu),
            // Memory was checked above; node-llama-cpp's VRAM check knows nothing of OpenCL/Hexagon memory.
            ...(this.offloadAll ? {gpuLayers: "max" as const, ignoreMemorySafetyChecks: true} : {})
        });
        const kvCacheType = options.kvCacheType ?? "f16";
        let flashAttention = resolveFlashAttention(options.flashAttention, onGpu);
        try {
            if (tune) {
                // Quantized KV caches need flash attention; otherwise "auto" measures both ways.
                const flashCandidates = options.flashAttention === "on" || kvCacheType !== "f16" ? [true]
                    : options.flashAttention === "off" ? [false] : [false, true];
                const tuned = await this.tuneThreads(model, options.path, options.threadTuning!.cacheFile, candidates, flashCandidates, options.signal)
                    .catch((error: unknown) => {
                        this.log?.("warn", `thread autotuning failed (${(error as Error).message}); using ${threads.threads} (${threads.reason})`);
                        return undefined;
                    });
                if (tuned != null) {
                    threads = tuned;
                    flashAttention = tuned.flashAttention;
                }
                this.llama.maxThreads = threads.threads;
            }
            const kvShape = readKvShape(model.fileInfo.metadata);
            const contextSize = memory?.contextSize ?? requestedContextSize(options, model.trainContextSize, kvShape);
            const context = await model.createContext({
                contextSize,
                sequences: options.parallel,
                batchSize: contextBatchSize(onGpu),
                threads: {ideal: threads.threads, min: 1},
                createSignal: options.signal,
                flashAttention,
                ...kvCacheContextOptions(kvCacheType, kvShape)
            }).catch((error: unknown) => {
                if (kvCacheType === "f16") throw error;
                throw new KvCacheTypeError(`Cannot create a context with a ${kvCacheType} KV cache: ${(error as Error).message} (llama.cpp's log says why; kvCacheType "f16" always works)`);
            });
            const architecture = model.fileInfo.metadata?.general?.architecture ?? "unknown";
            const description: ModelDescription = {
                id: options.id,
                path: path.resolve(options.path),
                architecture: String(architecture),
                contextSize: context.contextSize,
                trainContextSize: model.trainContextSize,
                parallel: context.totalSequences,
                threads: threads.threads,
                threadsReason: threads.reason,
                accelerator: this.accelerator,
                fileSizeBytes,
                chatTemplate: "",
                kvCacheType,
                flashAttention: context.flashAttention === true,
                kvBytesPerToken: kvShape == null ? 0 : kvBytesPerToken(kvShape, kvCacheType),
                canShiftContext: canShiftKvCache(kvCacheType),
                // A state saved from one KV type, or with V laid out for the other attention path
                // (llama.cpp stores V transposed without flash attention), cannot be loaded into
                // another; f16 without flash attention keeps its old fingerprints.
                fingerprint: await modelFingerprint(options.path, {
                    contextSize: context.contextSize,
                    ...(kvCacheType === "f16" ? {} : {kvCacheType}),
                    ...(context.flashAttention === true ? {flashAttention: true} : {})
                }),
                loadedAt: Math.floor(Date.now() / 1000),
                memory: memory?.report
            };
            const draft = options.draftPath == null ? undefined : await this.loadDraft(model, options, context.contextSize, threads.threads);
            if (draft != null) description.draftModel = path.resolve(options.draftPath!);
            const nativeLoop = await this.attachNativeLoop(context);
            description.decodeLoop = nativeLoop.description;
            const chatWrapper = await resolveModelChatWrapper(model, options.path, {othersLoaded: this.liveModels > 0});
            const loaded = new LlamaCppModel(description, model, context, this.grammars, chatWrapper, draft, options.speculationTuning, nativeLoop.loop);
            this.liveModels++;
            model.onDispose.createListener(() => this.liveModels--);
            description.chatTemplate = loaded.chatTemplateName;
            return loaded;
        } catch (error) {
            await model.dispose();
            throw error;
        }
    }

    /** The native decode loop on `context` (compiled on first use), or why node-llama-cpp's loop decodes. */
    private async attachNativeLoop(context: LlamaContext): Promise<{loop?: NativeDecodeLoop; description: NonNullable<ModelDescription["decodeLoop"]>}> {
        const {addon, status} = await loadDecodeLoopAddon();
        if (status.available && status.compiledNow) this.log?.("info", `compiled the native decode loop in ${status.compileMs} ms (${status.file})`);
        if (addon == null) {
            const reason = status.available ? "not loaded" : status.reason;
            this.log?.("info", `native decode loop unavailable, node-llama-cpp's loop decodes: ${reason}`);
            return {description: {kind: "binding", reason}};
        }
        const {loop, reason} = NativeDecodeLoop.attach(addon, context);
        if (loop == null) {
            this.log?.("warn", `native decode loop not attached, node-llama-cpp's loop decodes: ${reason}`);
            return {description: {kind: "binding", reason: reason ?? "not attached"}};
        }
        return {loop, description: {kind: "native", reason: "a stream alone on the model decodes in the native loop; with others it joins node-llama-cpp's batches"}};
    }

    /** The cached autotuned settings for this model on this machine and binary, measured when missing. */
    private async tuneThreads(model: LlamaModel, modelPath: string, cacheFile: string, candidates: number[], flashAttention: boolean[], signal?: AbortSignal): Promise<ThreadChoice & {flashAttention: boolean}> {
        const cache = new ThreadTuningCache(cacheFile);
        const tuneFlash = flashAttention.length > 1;
        const {addon} = await loadDecodeLoopAddon();
        // Measured through the loop that will decode: the native one where it attaches.
        const nativeLoop = addon == null ? undefined : (context: LlamaContext) => NativeDecodeLoop.attach(addon, context).loop;
        const key = `${await modelFingerprint(modelPath, {})}|${machineKey(`${this.llama.buildType} ${this.llama.llamaCppRelease.release}`)}|flash attention ${tuneFlash ? "tuned" : flashAttention[0] ? "on" : "off"}${nativeLoop == null ? "" : "|native loop, streaming share"}`;
        const cached = await cache.get(key);
        if (cached != null && candidates.includes(cached.threads) && typeof cached.flashAttention === "boolean")
            return {threads: cached.threads, flashAttention: cached.flashAttention, reason: describeTuning(cached, true)};
        const started = performance.now();
        const tuned = await tuneDecode(model, {candidates, flashAttention, signal, nativeLoop});
        await cache.set(key, tuned);
        this.log?.("info", `autotuned decode threads for ${path.basename(modelPath)} in ${Math.round(performance.now() - started)} ms: ${describeTuning(tuned, false)}`);
        return {threads: tuned.threads, flashAttention: tuned.flashAttention, reason: describeTuning(tuned, false)};
    }

    /**
     * Estimates weights + context before anything is allocated and applies `memoryFit`: the
     * context to create (lowered to fit), or a refusal naming the numbers.
     */
    private async fitMemory(options: LoadModelOptions, onGpu: boolean) {
        const policy = options.memoryFit ?? "shrink";
        if (policy === "off") return undefined;
        const info = await readModelInfo(options.path);
        const trainContextSize = Number(info.architectureMetadata.context_length) || DEFAULT_MAX_CONTEXT_SIZE;
        const contextSize = requestedContextSize(options, trainContextSize, readKvShape(info.metadata));
        const estimateOptions = {
            contextSize, sequences: options.parallel, onGpu, kvCacheType: options.kvCacheType, batchSize: contextBatchSize(onGpu),
            // Quantized KV caches turn flash attention on (kvCacheContextOptions).
            flashAttention: resolveFlashAttention(options.flashAttention, onGpu) === true || (options.kvCacheType ?? "f16") !== "f16"
        };
        const target = await estimateMemory(this.llama, info, estimateOptions);
        // A draft model gets its own weights and a context of the same size and sequences.
        if (options.draftPath != null) await assertReadableGguf(options.draftPath);
        const draft = options.draftPath == null ? undefined : await estimateMemory(this.llama, await readModelInfo(options.draftPath), estimateOptions);
        const estimate = draft == null ? target : {
            ...target,
            modelBytes: target.modelBytes + draft.modelBytes,
            contextBytes: (size: number) => target.contextBytes(size) + draft.contextBytes(size)
        };
        const decision = decideMemoryFit({
            ...estimate,
            freeBytes: Math.min(estimate.freeBytes, options.memoryLimitBytes ?? Infinity),
            memoryName: options.memoryLimitBytes != null && options.memoryLimitBytes < estimate.freeBytes ? "the memory limit" : estimate.memoryName,
            contextSize,
            sequences: options.parallel,
            policy,
            modelName: path.basename(options.path) + (options.draftPath == null ? "" : ` with draft ${path.basename(options.draftPath)}`)
        });
        if (decision.action === "refuse") throw new InsufficientMemoryError(decision.message);
        if (decision.action === "shrink") this.log?.("warn", decision.message);
        const report = {modelBytes: decision.modelBytes, contextBytes: decision.contextBytes, freeBytes: decision.freeBytes,
            ...(decision.action === "shrink" ? {requestedContextSize: decision.requestedContextSize} : {})};
        return {contextSize: decision.contextSize, report};
    }

    /** The draft model, checked for the same tokenizer, with one sequence per target sequence. */
    private async loadDraft(target: LlamaModel, options: LoadModelOptions, contextSize: number, threads: number) {
        await assertReadableGguf(options.draftPath!);
        const draft = await this.llama.loadModel({modelPath: options.draftPath!, loadSignal: options.signal, useMmap: useMmap(this.llama.gpu !== false)});
        try {
            assertCompatibleDraft(target, draft, options.draftPath!);
            const context = await draft.createContext({
                contextSize, sequences: options.parallel, threads: {ideal: threads, min: 1},
                flashAttention: resolveFlashAttention(options.flashAttention, this.llama.gpu !== false)
            });
            return {model: draft, context};
        } catch (error) {
            await draft.dispose();
            throw error;
        }
    }

    setMaxThreads(threads: number) {
        // node-llama-cpp applies it at the next batch of every context (its live setter).
        this.llama.maxThreads = Math.max(1, threads);
    }

    async dispose() {
        await this.llama.dispose();
    }
}

function describeBuild(llama: Llama, preset: string | undefined, reason: string): LlamaBuildInfo {
    return {
        type: llama.buildType,
        preset,
        cmakeOptions: llama.cmakeOptions,
        llamaCppRelease: `${llama.llamaCppRelease.repo}@${llama.llamaCppRelease.release}`,
        reason
    };
}

/**
 * On the CPU, llama.cpp repacks Q4_0/Q8_0/IQ4_NL weights into an interleaved copy for its
 * faster kernels; with mmap the file's pages stay mapped too, so RSS held the weights twice
 * (1B Q4_0: 1,178 MiB vs 694 MiB without mmap, same speed and load time). With a GPU, mmap
 * avoids a RAM copy of what goes to VRAM, so it stays node-llama-cpp's choice.
 */
function useMmap(onGpu: boolean): boolean | undefined {
    return onGpu ? undefined : false;
}

function resolveFlashAttention(setting: LoadModelOptions["flashAttention"], onGpu: boolean): boolean | "auto" {
    if (setting === "on") return true;
    if (setting === "off") return false;
    return onGpu ? "auto" : false;
}

/** The context per sequence asked for: explicit, from the KV budget, else the model's trained size capped at 2048. */
function requestedContextSize(options: LoadModelOptions, trainContextSize: number, kvShape: ReturnType<typeof readKvShape>) {
    const kvCacheType = options.kvCacheType ?? "f16";
    const budgetTokens = options.kvBudget?.tokens ?? (options.kvBudget?.mib != null && kvShape != null
        ? Math.floor(options.kvBudget.mib * 1024 * 1024 / kvBytesPerToken(kvShape, kvCacheType))
        : undefined);
    return options.contextSize ??
        (budgetTokens != null ? contextSizeForBudget(budgetTokens, options.parallel) : Math.min(trainContextSize, DEFAULT_MAX_CONTEXT_SIZE));
}

/** The model and its context do not fit in free memory; the message has the numbers. */
export class InsufficientMemoryError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "InsufficientMemoryError";
    }
}

/** llama.cpp rounds each sequence's cells up to a multiple of 256; round down so the budget holds. */
function contextSizeForBudget(budgetTokens: number, parallel: number) {
    const perSequence = Math.floor(budgetTokens / parallel / 256) * 256;
    if (perSequence < 256)
        throw new Error(`A KV budget of ${budgetTokens} tokens is too small for ${parallel} sequences (each needs at least 256 tokens); raise the budget or lower --parallel.`);
    return perSequence;
}
