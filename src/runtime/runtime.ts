import path from "node:path";
import type {Backend, BackendModel, BackendSequence, LoadModelOptions, ModelDescription} from "../backends/backend.js";
import {InvalidRequestError, ModelNotFoundError, NotReadyError, ShuttingDownError, ThrottledError} from "./errors.js";
import {fitToContext, type ContextOverflowOptions} from "./context-fit.js";
import {Generation} from "./generation.js";
import {SlotScheduler} from "./scheduler.js";
import {MAX_TOP_LOGPROBS, type GenerationRequest, type GenerationStream, type ResponseConstraint} from "./types.js";
import {KvManager, type KvStats} from "../kv/kv-manager.js";
import {SpillStore} from "../kv/spill-store.js";
import {lookupDraft} from "../speculative/prompt-lookup.js";
import type {DraftSource} from "../speculative/types.js";

/** How long cancelled generations get to hand their sequences back before the model is freed anyway. */
const CANCEL_WAIT_MS = 5000;

const promptLookupSource: DraftSource = {kind: "prompt-lookup", draft: async (history, k) => lookupDraft(history, k)};

export interface RuntimeOptions {
    /** Requests that may wait for a free sequence before new ones get 429. Default 64. */
    maxQueued?: number;
    /** What happens when a prompt or generation outgrows the context (policy default "error"). */
    contextOverflow?: ContextOverflowOptions;
    kv?: KvOptions;
    /**
     * Speculative decoding for requests that do not say: "prompt-lookup" drafts from n-grams of
     * the prompt and the text so far. Default "off". Requests may opt in or out (`speculative`).
     */
    speculation?: "off" | "prompt-lookup" | "draft";
    /** Engine events worth a log line (spills, restores, refused state files). */
    onEvent?: (event: string, details: Record<string, unknown>) => void;
    /** Called whenever the last running generation ends (the model pool's idle and eviction clock). */
    onIdle?: () => void;
}

export interface KvOptions {
    /** Tokens per KV block (accounting and prefix-hash granularity). Default 32. */
    blockSize?: number;
    /** Folder for spilled sequence states; unset: no spilling. */
    spillDir?: string;
    /** Bytes of spilled states kept at most. Default 1 GiB. */
    spillBudgetBytes?: number;
    /** Spilled states kept at most (see SpillStoreOptions.maxStates). */
    spillMaxStates?: number;
    /** Write every cached sequence to the spill folder on shutdown, to be picked up after a restart. */
    persistOnShutdown?: boolean;
}

/**
 * Limits the engine obeys at run time (the power governor sets them; the engine does not know
 * why). Unset fields mean no limit.
 */
export interface EngineLimits {
    /** CPU threads for decoding, applied live; never above the model's own count. */
    threads?: number;
    /** Requests decoded at once; the rest wait in the queue. */
    maxConcurrent?: number;
    /** Tokens per second per stream (pacing: the decoder idles between tokens). */
    tokensPerSecond?: number;
    /** Cap on each request's max_tokens. */
    maxTokens?: number;
    /** Speculative decoding allowed (no effect until the engine speculates). */
    speculative?: boolean;
    /** While set, new requests get 503 with Retry-After; streams in flight go on. */
    refuse?: {message: string; retryAfterSeconds: number};
}

export type RuntimeStatus = "idle" | "loading" | "ready" | "failed" | "closed";

export interface RuntimeHealth {
    status: RuntimeStatus;
    error?: string;
    model?: ModelDescription;
    slots?: {total: number; free: number; queued: number; running: number};
    kv?: KvStats;
    limits: EngineLimits;
    /** Draft tokens verified since start, and how many the target kept. */
    speculation: {drafted: number; accepted: number};
}

interface LoadedModel {
    model: BackendModel;
    scheduler: SlotScheduler<BackendSequence>;
    kv: KvManager;
    aliases: Set<string>;
}

/**
 * The one object transports talk to. Owns the loaded model, hands its sequences to requests
 * and turns each request into a `GenerationStream`. Knows nothing about HTTP or sockets.
 */
export class Runtime {
    private loaded?: LoadedModel;
    private status: RuntimeStatus = "idle";
    private loadError?: Error;
    private readonly active = new Set<Generation>();
    private idleWaiters: (() => void)[] = [];
    private limits: EngineLimits = {};
    private readonly speculationTotals = {drafted: 0, accepted: 0};

    constructor(readonly backend: Backend, private readonly options: RuntimeOptions = {}) {}

    async load(options: LoadModelOptions): Promise<ModelDescription> {
        this.status = "loading";
        this.loadError = undefined;
        try {
            const model = await this.backend.loadModel(options);
            if (this.options.contextOverflow?.policy === "slide" && !model.description.canShiftContext) {
                await model.dispose();
                throw new Error(`contextOverflow "slide" needs a KV cache that can be shifted, and a ${model.description.kvCacheType} cache cannot. ` +
                    `Use kvCacheType "f16" or contextOverflow "truncate".`);
            }
            const file = path.basename(options.path);
            this.loaded = {
                model,
                scheduler: new SlotScheduler(model.sequences, {maxQueued: this.options.maxQueued ?? 64}),
                kv: await this.createKvManager(model),
                aliases: new Set([options.id, file, file.replace(/\.gguf$/i, ""), "default"])
            };
            this.status = "ready";
            return model.description;
        } catch (error) {
            this.status = "failed";
            this.loadError = error as Error;
            throw error;
        }
    }

    get ready() {
        return this.status === "ready";
    }

    /** Models clients can name in `model`. */
    listModels(): ModelDescription[] {
        return this.loaded == null ? [] : [this.loaded.model.description];
    }

    health(): RuntimeHealth {
        const health: RuntimeHealth = {status: this.status, limits: this.limits, speculation: {...this.speculationTotals}};
        if (this.loadError != null) health.error = this.loadError.message;
        if (this.loaded != null) {
            const {model, scheduler, kv} = this.loaded;
            health.model = model.description;
            health.kv = kv.stats();
            health.slots = {
                total: model.sequences.length,
                free: scheduler.freeSlots,
                queued: scheduler.queued,
                running: model.sequences.length - scheduler.freeSlots
            };
        }
        return health;
    }

    /** Counts tokens the way a request's input would be counted. */
    countTokens(text: string, modelId?: string): number {
        return this.resolve(modelId).model.tokenize(text).length;
    }

    /** Compiles (and caches) a constraint ahead of use; rejects as `generate()` would for one it cannot enforce. */
    async prepareConstraint(constraint: ResponseConstraint, modelId?: string): Promise<void> {
        await this.resolve(modelId).model.prepareConstraint(constraint);
    }

    /** Tokens of `text` (`special`: special-token text parsed, BOS added where the model wants it), with each token's text. */
    tokenize(text: string, {special = false, modelId}: {special?: boolean; modelId?: string} = {}) {
        const model = this.tokenUtilities(modelId);
        const tokens = model.tokenizeWith(text, {special});
        // Special tokens (BOS) have no text of their own; their markup stands for them.
        return {tokens, piece: (token: number) => ({text: model.tokenText(token) || model.detokenize([token], true), bytes: model.tokenBytes(token)})};
    }

    /** Text of `tokens`; ids outside the vocabulary are refused (llama.cpp would read out of bounds). */
    detokenize(tokens: readonly number[], modelId?: string): string {
        const model = this.tokenUtilities(modelId);
        const bad = tokens.findIndex((token) => !isTokenOf(model.vocabularySize, token));
        if (bad >= 0)
            throw new InvalidRequestError(`tokens[${bad}] (${tokens[bad]}) is not a token id of this model (0 to ${model.vocabularySize - 1}).`, "tokens");
        return model.detokenize(tokens, true);
    }

    /** Embedding vectors of each input (strings or token ids), evaluated in order; usage counts their tokens. */
    async embed(inputs: readonly (string | readonly number[])[], {modelId, signal}: {modelId?: string; signal?: AbortSignal} = {}) {
        const {model} = this.resolve(modelId);
        if (model.embed == null)
            throw new InvalidRequestError(`The ${this.backend.name} backend does not compute embeddings.`, "model");
        if (this.limits.refuse != null)
            throw new ThrottledError(this.limits.refuse.message, this.limits.refuse.retryAfterSeconds);
        const size = model.vocabularySize ?? 0;
        inputs.forEach((input, index) => {
            if (typeof input !== "string" && !input.every((token) => isTokenOf(size, token)))
                throw new InvalidRequestError(`input[${index}] holds a token id outside this model's vocabulary (0 to ${size - 1}).`, "input");
        });
        return {model: model.description.id, ...(await model.embed(inputs, signal))};
    }

    private tokenUtilities(modelId: string | undefined) {
        const {model} = this.resolve(modelId);
        const {tokenizeWith, detokenize, tokenText, tokenBytes, vocabularySize} = model;
        if (tokenizeWith == null || detokenize == null || tokenText == null || tokenBytes == null || vocabularySize == null || vocabularySize <= 0)
            throw new InvalidRequestError(`The ${this.backend.name} backend does not expose its tokenizer.`, "model");
        return {
            tokenizeWith: tokenizeWith.bind(model), detokenize: detokenize.bind(model),
            tokenText: tokenText.bind(model), tokenBytes: tokenBytes.bind(model), vocabularySize
        };
    }

    /**
     * Validates the request, waits for a free sequence (bounded queue) and returns the stream.
     * Rejects before any event for input errors, a full queue or a prompt that cannot fit.
     */
    async generate(original: GenerationRequest, {signal}: {signal?: AbortSignal} = {}): Promise<GenerationStream> {
        const receivedAt = performance.now();
        const {model, scheduler, kv} = this.resolve(original.model);
        if (this.limits.refuse != null)
            throw new ThrottledError(this.limits.refuse.message, this.limits.refuse.retryAfterSeconds);
        const request = this.capMaxTokens(original);
        const rendered = request.input.kind === "chat"
            ? model.renderChat(request.input.messages)
            : model.renderCompletion(request.input.prompt);
        const contextSize = model.description.contextSize;
        const fit = fitToContext(rendered, {
            contextSize,
            maxTokens: request.maxTokens,
            policy: request.contextOverflow,
            param: request.input.kind === "chat" ? "messages" : "prompt",
            canShiftContext: model.description.canShiftContext
        }, this.options.contextOverflow);
        const prompt = fit.prompt;

        checkChoicesAndLogprobs(request, model);
        const constraint = request.responseFormat == null ? undefined : await model.prepareConstraint(request.responseFormat);
        const roomLeft = contextSize - prompt.tokens.length;
        const decodeTokens = Math.min(request.maxTokens ?? roomLeft, roomLeft);
        const sequence = await scheduler.acquire((free) => kv.choose(free, prompt.tokens, request.session, decodeTokens), signal);
        try {
            await kv.prepare(sequence, prompt.tokens, decodeTokens);
        } catch (error) {
            kv.release(sequence);
            scheduler.release(sequence);
            throw error;
        }
        // The client may have gone while the sequence was prepared. (A Generation built with an
        // aborted signal releases from inside its constructor, before `generation` below exists:
        // that threw, and the sequence was never given back — found by the disconnect storm test.)
        if (signal?.aborted) {
            kv.release(sequence);
            scheduler.release(sequence);
            throw signal.reason;
        }
        const generation: Generation = new Generation({
            request,
            model,
            sequence,
            prompt,
            constraint,
            tokenLimit: fit.tokenLimit,
            overflow: fit.policy === "error" ? undefined : fit,
            receivedAt,
            acquiredAt: performance.now(),
            signal,
            tokensPerSecond: () => this.limits.tokensPerSecond,
            speculation: this.draftSourceFor(request, sequence),
            release: ({slid, drafted, accepted}) => {
                this.active.delete(generation);
                this.speculationTotals.drafted += drafted;
                this.speculationTotals.accepted += accepted;
                kv.release(sequence, request.session, slid ? fit.window?.sinkTokens ?? 0 : undefined);
                scheduler.release(sequence);
                if (this.active.size === 0) {
                    for (const resolve of this.idleWaiters.splice(0)) resolve();
                    this.options.onIdle?.();
                }
            }
        });
        this.active.add(generation);
        return generation;
    }

    /**
     * Applies new limits at once: threads at the next batch, concurrency for the next request
     * to start, pacing from the next token of every stream, the max_tokens cap and refusal for
     * new requests. Running requests are never stopped.
     */
    setLimits(limits: EngineLimits) {
        this.limits = {...limits};
        const model = this.loaded?.model;
        if (model != null)
            this.backend.setMaxThreads?.(Math.min(limits.threads ?? model.description.threads, model.description.threads));
        this.loaded?.scheduler.setCapacity(limits.maxConcurrent ?? Number.POSITIVE_INFINITY);
    }

    get activeGenerations() {
        return this.active.size;
    }

    /** The loaded model's sequences (what each holds in KV), for diagnostics and tests. */
    get sequences(): readonly BackendSequence[] {
        return this.loaded?.model.sequences ?? [];
    }

    /**
     * Refuses new work, gives running generations up to `graceMs` to end, cancels the rest (their
     * streams end with finish reason "cancelled"), persists sessions when enabled, then frees the model. Disposing a model under a
     * running decode throws from inside node-llama-cpp, so the wait matters.
     */
    async dispose({graceMs = 5000}: {graceMs?: number} = {}) {
        this.status = "closed";
        this.loaded?.scheduler.close();
        if (!await this.idle(graceMs)) {
            // Past the grace period: end the rest as cancelled, so their streams still finish
            // properly (a final chunk, a `done` frame) and give their sequences back.
            for (const generation of this.active) generation.cancel();
            await this.idle(CANCEL_WAIT_MS);
        }
        await this.loaded?.kv.settle();
        if (this.loaded != null && this.options.kv?.persistOnShutdown)
            await this.loaded.kv.persist(this.loaded.model.sequences);
        await this.loaded?.model.dispose();
        this.loaded = undefined;
        await this.backend.dispose();
    }

    /** Resolves true once no generation runs, or false after `timeoutMs`. */
    private idle(timeoutMs: number): Promise<boolean> {
        if (this.active.size === 0) return Promise.resolve(true);
        return new Promise<boolean>((resolve) => {
            const waiter = () => {
                clearTimeout(timer);
                resolve(true);
            };
            const timer = setTimeout(() => {
                this.idleWaiters = this.idleWaiters.filter((entry) => entry !== waiter);
                resolve(false);
            }, timeoutMs);
            this.idleWaiters.push(waiter);
        });
    }

    /**
     * Which drafts a request verifies: none when it or the power limits say so; else what it asks
     * for, or the server's default ("draft" when a draft model is loaded, else "off").
     */
    private draftSourceFor(request: GenerationRequest, sequence: BackendSequence): DraftSource | undefined {
        if (request.speculative === false || this.limits.speculative === false) return undefined;
        const serverMode = this.options.speculation ?? (sequence.draftSource != null ? "draft" : "off");
        const mode = request.speculative === true ? (serverMode === "off" ? "prompt-lookup" : serverMode) : request.speculative ?? serverMode;
        if (mode === "draft") return sequence.draftSource ?? promptLookupSource;
        return mode === "prompt-lookup" ? promptLookupSource : undefined;
    }

    private capMaxTokens(request: GenerationRequest): GenerationRequest {
        const cap = this.limits.maxTokens;
        if (cap == null || (request.maxTokens != null && request.maxTokens <= cap)) return request;
        return {...request, maxTokens: cap};
    }

    private async createKvManager(model: BackendModel) {
        const {blockSize = 32, spillDir, spillBudgetBytes = 1024 ** 3, spillMaxStates} = this.options.kv ?? {};
        const identity = model.description.fingerprint;
        let spill: SpillStore | undefined;
        if (spillDir != null) {
            const opened = await SpillStore.open({dir: path.join(spillDir, identity), budgetBytes: spillBudgetBytes, maxStates: spillMaxStates, model: identity});
            spill = opened.store;
            if (opened.discarded > 0)
                this.options.onEvent?.("spill-discarded", {files: opened.discarded});
        }
        return new KvManager(model.sequences.length, {
            blockSize,
            sequenceCapacity: model.description.contextSize,
            modelIdentity: identity,
            spill,
            onEvent: this.options.onEvent
        });
    }

    private resolve(modelId: string | undefined): LoadedModel {
        if (this.status === "closed")
            throw new ShuttingDownError();
        if (this.loaded == null) {
            if (this.status === "failed")
                throw new NotReadyError(`The model failed to load: ${this.loadError?.message}`, 30);
            throw new NotReadyError();
        }
        if (modelId != null && !this.loaded.aliases.has(modelId))
            throw new ModelNotFoundError(modelId, [this.loaded.model.description.id]);
        return this.loaded;
    }
}

/** Most answers one request may ask for (they run one after another on its sequence). */
export const MAX_CHOICES = 16;

/** Whether `token` is an id of a vocabulary of `size` tokens (an unknown size, 0, refuses all). */
function isTokenOf(size: number, token: number) {
    return Number.isInteger(token) && token >= 0 && token < size;
}

function checkChoicesAndLogprobs(request: GenerationRequest, model: BackendModel) {
    const n = request.n ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > MAX_CHOICES)
        throw new InvalidRequestError(`n must be an integer from 1 to ${MAX_CHOICES}.`, "n");
    const top = request.logprobs?.top;
    if (top != null && (!Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS))
        throw new InvalidRequestError(`top_logprobs must be an integer from 0 to ${MAX_TOP_LOGPROBS}.`, "top_logprobs");
    if (request.logprobs != null && model.supportsLogprobs !== true)
        throw new InvalidRequestError("This model's backend does not report log-probabilities.", "logprobs");
    if (request.logprobs != null && request.responseFormat != null && request.sampling.temperature > 0)
        throw new InvalidRequestError("logprobs with a grammar (response_format or tools) need temperature 0.", "logprobs");
}
