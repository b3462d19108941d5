import path from "node:path";
import type {Backend, BackendModel, BackendSequence, LoadModelOptions, ModelDescription} from "../backends/backend.js";
import {ContextLengthExceededError, ModelNotFoundError, NotReadyError, ShuttingDownError} from "./errors.js";
import {Generation} from "./generation.js";
import {SlotScheduler} from "./scheduler.js";
import type {GenerationRequest, GenerationStream} from "./types.js";

export interface RuntimeOptions {
    /** Requests that may wait for a free sequence before new ones get 429. Default 64. */
    maxQueued?: number;
}

export type RuntimeStatus = "idle" | "loading" | "ready" | "failed" | "closed";

export interface RuntimeHealth {
    status: RuntimeStatus;
    error?: string;
    model?: ModelDescription;
    slots?: {total: number; free: number; queued: number; running: number};
}

interface LoadedModel {
    model: BackendModel;
    scheduler: SlotScheduler<BackendSequence>;
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

    constructor(readonly backend: Backend, private readonly options: RuntimeOptions = {}) {}

    async load(options: LoadModelOptions): Promise<ModelDescription> {
        this.status = "loading";
        try {
            const model = await this.backend.loadModel(options);
            const file = path.basename(options.path);
            this.loaded = {
                model,
                scheduler: new SlotScheduler(model.sequences, {maxQueued: this.options.maxQueued ?? 64}),
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
        const health: RuntimeHealth = {status: this.status};
        if (this.loadError != null) health.error = this.loadError.message;
        if (this.loaded != null) {
            const {model, scheduler} = this.loaded;
            health.model = model.description;
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

    /**
     * Validates the request, waits for a free sequence (bounded queue) and returns the stream.
     * Rejects before any event for input errors, a full queue or a prompt that cannot fit.
     */
    async generate(request: GenerationRequest, {signal}: {signal?: AbortSignal} = {}): Promise<GenerationStream> {
        const receivedAt = performance.now();
        const {model, scheduler} = this.resolve(request.model);
        const prompt = request.input.kind === "chat"
            ? model.renderChat(request.input.messages)
            : model.renderCompletion(request.input.prompt);
        const contextSize = model.description.contextSize;
        if (prompt.tokens.length + 1 > contextSize)
            throw new ContextLengthExceededError(prompt.tokens.length, contextSize, request.input.kind === "chat" ? "messages" : "prompt");

        const constraint = request.responseFormat == null ? undefined : await model.prepareConstraint(request.responseFormat);
        const sequence = await scheduler.acquire((free) => pickLongestPrefix(free, prompt.tokens), signal);
        const roomLeft = contextSize - prompt.tokens.length;
        const generation: Generation = new Generation({
            request,
            model,
            sequence,
            prompt,
            constraint,
            tokenLimit: Math.min(request.maxTokens ?? roomLeft, roomLeft),
            receivedAt,
            acquiredAt: performance.now(),
            signal,
            release: () => {
                this.active.delete(generation);
                scheduler.release(sequence);
                if (this.active.size === 0)
                    for (const resolve of this.idleWaiters.splice(0)) resolve();
            }
        });
        this.active.add(generation);
        return generation;
    }

    get activeGenerations() {
        return this.active.size;
    }

    /**
     * Refuses new work, gives running generations up to `graceMs` to end (transports cancel
     * theirs when their connections close), then frees the model. Disposing a model under a
     * running decode throws from inside node-llama-cpp, so the wait matters.
     */
    async dispose({graceMs = 5000}: {graceMs?: number} = {}) {
        this.status = "closed";
        this.loaded?.scheduler.close();
        if (this.active.size > 0)
            await new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, graceMs);
                this.idleWaiters.push(() => {
                    clearTimeout(timer);
                    resolve();
                });
            });
        await this.loaded?.model.dispose();
        this.loaded = undefined;
        await this.backend.dispose();
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

/**
 * The free sequence whose KV shares the longest prefix with the prompt, so a continued chat or
 * a repeated system prompt skips its prefill. Ties go to the emptiest sequence, which keeps
 * other warm caches for the requests that match them.
 */
function pickLongestPrefix(free: readonly BackendSequence[], prompt: readonly number[]): BackendSequence {
    let best = free[0]!;
    let bestCommon = -1;
    for (const sequence of free) {
        const cached = sequence.cachedTokens;
        const limit = Math.min(cached.length, prompt.length);
        let common = 0;
        while (common < limit && cached[common] === prompt[common])
            common++;
        if (common > bestCommon || (common === bestCommon && cached.length < best.cachedTokens.length)) {
            best = sequence;
            bestCommon = common;
        }
    }
    return best;
}
