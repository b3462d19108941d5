import path from "node:path";
import {stat} from "node:fs/promises";
import {getLlama, type Llama, type LlamaModel, LlamaLogLevel} from "node-llama-cpp";
import type {Backend, BackendModel, LoadModelOptions, ModelDescription} from "../backend.js";
import {chooseThreads} from "./threads.js";
import {GrammarCache} from "./constraint.js";
import {LlamaCppModel} from "./model.js";
import {canShiftKvCache, kvBytesPerToken, kvCacheContextOptions, KvCacheTypeError, readKvShape} from "./kv-cache.js";
import {assertReadableGguf} from "../../models/gguf-check.js";
import {preflightModel} from "./preflight.js";
import {modelFingerprint} from "../../models/fingerprint.js";
import {assertCompatibleDraft} from "./draft-model.js";

/** llama.cpp warnings about GGUF metadata quirks that change nothing for the user. */
const NOISE = /bad special token|special_eos_id is not in special_eog_ids|control token: .* is not marked as EOG/;

/** Context per sequence when neither the user nor the model says otherwise. */
const DEFAULT_MAX_CONTEXT_SIZE = 2048;

export interface LlamaCppBackendOptions {
    /** "auto" picks Metal, CUDA or Vulkan when present, else CPU; false forces CPU. */
    gpu?: "auto" | false;
    logger?: (level: "debug" | "info" | "warn" | "error", message: string) => void;
}

/** llama.cpp through node-llama-cpp's prebuilt (or locally built) binaries. */
export class LlamaCppBackend implements Backend {
    readonly name = "llama.cpp";

    private constructor(readonly llama: Llama, private readonly grammars: GrammarCache) {}

    static async create(options: LlamaCppBackendOptions = {}) {
        const log = options.logger;
        const llama = await getLlama({
            gpu: options.gpu ?? "auto",
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
        return new LlamaCppBackend(llama, new GrammarCache(llama));
    }

    get accelerator(): string {
        return this.llama.gpu === false ? "cpu" : this.llama.gpu;
    }

    async loadModel(options: LoadModelOptions): Promise<BackendModel> {
        await preflightModel(options.path, this.llama, {checkMemory: options.checkMemory});
        const fileSizeBytes = (await stat(options.path)).size;
        const onGpu = this.llama.gpu !== false;
        const threads = chooseThreads({
            requested: options.threads,
            mathCores: this.llama.cpuMathCores,
            modelSizeBytes: fileSizeBytes,
            onGpu
        });
        // Contexts are capped at the thread count they were created with; the live limit
        // (`llama.maxThreads`) is what the power governor lowers later.
        this.llama.maxThreads = threads.threads;

        const model = await this.llama.loadModel({modelPath: options.path, loadSignal: options.signal});
        try {
            const kvCacheType = options.kvCacheType ?? "f16";
            const kvShape = readKvShape(model.fileInfo.metadata);
            const budgetTokens = options.kvBudget?.tokens ?? (options.kvBudget?.mib != null && kvShape != null
                ? Math.floor(options.kvBudget.mib * 1024 * 1024 / kvBytesPerToken(kvShape, kvCacheType))
                : undefined);
            const contextSize = options.contextSize ??
                (budgetTokens != null ? contextSizeForBudget(budgetTokens, options.parallel) : Math.min(model.trainContextSize, DEFAULT_MAX_CONTEXT_SIZE));
            const context = await model.createContext({
                contextSize,
                sequences: options.parallel,
                threads: {ideal: threads.threads, min: 1},
                createSignal: options.signal,
                flashAttention: resolveFlashAttention(options.flashAttention, onGpu),
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
                // A state saved from one KV type cannot be loaded into another (f16 keeps its old fingerprints).
                fingerprint: await modelFingerprint(options.path, {contextSize: context.contextSize, ...(kvCacheType === "f16" ? {} : {kvCacheType})}),
                loadedAt: Math.floor(Date.now() / 1000)
            };
            const draft = options.draftPath == null ? undefined : await this.loadDraft(model, options, context.contextSize, threads.threads);
            if (draft != null) description.draftModel = path.resolve(options.draftPath!);
            const loaded = new LlamaCppModel(description, model, context, this.grammars, draft);
            description.chatTemplate = loaded.chatTemplateName;
            return loaded;
        } catch (error) {
            await model.dispose();
            throw error;
        }
    }

    /** The draft model, checked for the same tokenizer, with one sequence per target sequence. */
    private async loadDraft(target: LlamaModel, options: LoadModelOptions, contextSize: number, threads: number) {
        await assertReadableGguf(options.draftPath!);
        const draft = await this.llama.loadModel({modelPath: options.draftPath!, loadSignal: options.signal});
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

function resolveFlashAttention(setting: LoadModelOptions["flashAttention"], onGpu: boolean): boolean | "auto" {
    if (setting === "on") return true;
    if (setting === "off") return false;
    return onGpu ? "auto" : false;
}

/** llama.cpp rounds each sequence's cells up to a multiple of 256; round down so the budget holds. */
function contextSizeForBudget(budgetTokens: number, parallel: number) {
    const perSequence = Math.floor(budgetTokens / parallel / 256) * 256;
    if (perSequence < 256)
        throw new Error(`A KV budget of ${budgetTokens} tokens is too small for ${parallel} sequences (each needs at least 256 tokens); raise the budget or lower --parallel.`);
    return perSequence;
}
