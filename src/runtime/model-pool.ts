import type {Backend, LoadModelOptions, ModelDescription} from "../backends/backend.js";
import type {AvailableModel} from "../models/available-models.js";
import {EngineError, ModelLoadError, ModelNotFoundError, ShuttingDownError} from "./errors.js";
import {Runtime, type EngineLimits, type RuntimeHealth, type RuntimeOptions} from "./runtime.js";
import {SharedBackend} from "./shared-backend.js";
import type {GenerationRequest, GenerationStream} from "./types.js";

/** What transports need to start a generation: a `Runtime` (one model) or a `ModelHost` (routes by `request.model`). */
export type GenerationEngine = Pick<Runtime, "generate">;

/** One entry of `/v1/models`. */
export interface ModelListing {
    id: string;
    state: "loaded" | "loading" | "unloading" | "unloaded" | "failed";
    isDefault: boolean;
    /** Other names that select the model. */
    aliases: string[];
    sizeBytes?: number;
    /** Unix seconds: when it was loaded, else when its file last changed. */
    created: number;
    /** The loaded model's facts (context, parallel, template…). */
    description?: ModelDescription;
    /** Why the last load failed, or why the file cannot be used. */
    error?: string;
}

/** A loaded (or loading) model in `/health`. */
export interface LoadedModelHealth {
    id: string;
    state: "loading" | "ready" | "draining" | "unloading";
    isDefault: boolean;
    /** Requests holding or waiting for one of its sequences. */
    activeRequests: number;
    slots?: RuntimeHealth["slots"];
    idleSeconds: number;
    /** When the idle TTL will unload it; absent when it is busy, the default model, or the TTL is off. */
    unloadInSeconds?: number;
}

export interface ModelHostHealth extends RuntimeHealth {
    /** The default model's runtime fills the fields above; every loaded model is here. */
    models: LoadedModelHealth[];
    maxLoadedModels: number;
    modelLoads: {loads: number; unloads: number; failures: number};
}

/** The models behind the API: one fixed runtime, or a pool that loads and unloads them on demand. */
export interface ModelHost extends GenerationEngine {
    /** Runs `fn` on the runtime of the model `name` selects, loading it first if needed; it is not unloaded meanwhile. */
    use<T>(name: string | undefined, fn: (runtime: Runtime, model: {id: string}) => Promise<T> | T, signal?: AbortSignal): Promise<T>;
    listModels(): Promise<ModelListing[]>;
    health(): ModelHostHealth;
    /** Power limits, applied to every runtime now and later. */
    setLimits(limits: EngineLimits): void;
    /** Refuses new work; streams in flight get `graceMs` to finish, then end as cancelled. */
    dispose(options?: {graceMs?: number}): Promise<void>;
}

/** A host over one runtime loaded by its owner (tests, benchmarks, `startServer({runtime})`). */
export function singleRuntimeHost(runtime: Runtime): ModelHost {
    return {
        generate: (request, options) => runtime.generate(request, options),
        async use(name, fn) {
            const id = runtime.health().model?.id ?? "default";
            if (name != null) runtime.countTokens("", name); // throws the runtime's own model_not_found / not_ready
            return fn(runtime, {id});
        },
        async listModels() {
            return runtime.listModels().map((model) => ({
                id: model.id, state: "loaded" as const, isDefault: true, aliases: [], sizeBytes: model.fileSizeBytes, created: model.loadedAt, description: model
            }));
        },
        health() {
            const health = runtime.health();
            const model = health.model;
            return {
                ...health,
                models: model == null ? [] : [{id: model.id, state: "ready", isDefault: true, activeRequests: runtime.activeGenerations, slots: health.slots, idleSeconds: 0}],
                maxLoadedModels: 1,
                modelLoads: {loads: model == null ? 0 : 1, unloads: 0, failures: 0}
            };
        },
        setLimits: (limits) => runtime.setLimits(limits),
        dispose: (options) => runtime.dispose(options)
    };
}

/** Where the pool learns which models exist (the default model, the `models` setting, the models folder). */
export interface ModelCatalog {
    list(): Promise<AvailableModel[]>;
    find(name: string | undefined): Promise<AvailableModel | undefined>;
}

export type ModelPoolEvent =
    | {type: "loading"; model: string}
    | {type: "loaded"; model: string; description: ModelDescription; ms: number}
    | {type: "load-failed"; model: string; error: Error}
    | {type: "draining"; model: string; forModel: string}
    | {type: "unloaded"; model: string; reason: "idle" | "lru" | "shutdown"};

export interface ModelPoolOptions {
    /** Shared by every runtime; the pool disposes it. */
    backend: Backend;
    catalog: ModelCatalog;
    /** Options of every runtime (queue, KV, speculation, context overflow). */
    runtimeOptions?: RuntimeOptions;
    /** Load options of one model (parallel, context, KV type, threads, draft). */
    loadOptions(model: AvailableModel, signal: AbortSignal): LoadModelOptions;
    /** Models loaded at once; loading another unloads the least recently used idle one. Default 1. */
    maxLoaded?: number;
    /** Unload a model after this long without requests; 0 = never. The default model is exempt. Default 5 min. */
    idleTtlMs?: number;
    onEvent?: (event: ModelPoolEvent) => void;
}

type EntryState = LoadedModelHealth["state"];

interface Entry {
    model: AvailableModel;
    runtime: Runtime;
    state: EntryState;
    ready: Promise<ModelDescription>;
    /** Requests between choosing this model and holding a sequence (or failing). */
    leases: number;
    lastUsed: number;
    idleTimer?: NodeJS.Timeout;
    unloadAt?: number;
    controller: AbortController;
    /** Set once it is being unloaded. */
    unloaded?: Promise<void>;
}

/**
 * The models behind the API. Each loaded model is a `Runtime`; a request's `model` picks one,
 * loading it on first use (concurrent first requests share one load). At most `maxLoaded` stay
 * loaded: another model takes the place of the least recently used idle one, and when every
 * loaded model is busy the oldest stops taking new requests ("draining") and is unloaded once
 * its streams end — a running stream is never cut. Models loaded on demand unload after
 * `idleTtlMs` without requests.
 */
export class ModelPool implements ModelHost {
    private readonly entries = new Map<string, Entry>();
    private readonly failures = new Map<string, string>();
    private readonly shared: SharedBackend;
    private changeWaiters: (() => void)[] = [];
    /** Requests waiting for a model to be unloaded so theirs can load. */
    private waitingForRoom = 0;
    private limits: EngineLimits = {};
    private closed = false;
    private preloading?: "loading" | "failed" | "done";
    private preloadError?: string;
    private readonly counts = {loads: 0, unloads: 0, failures: 0};
    private readonly maxLoaded: number;
    private readonly idleTtlMs: number;

    constructor(private readonly options: ModelPoolOptions) {
        this.shared = new SharedBackend(options.backend);
        this.maxLoaded = Math.max(1, options.maxLoaded ?? 1);
        this.idleTtlMs = options.idleTtlMs ?? 300_000;
    }

    generate(request: GenerationRequest, {signal}: {signal?: AbortSignal} = {}): Promise<GenerationStream> {
        // The runtime knows its model by the canonical id; aliases are resolved here.
        return this.use(request.model, (runtime, model) =>
            runtime.generate(request.model == null ? request : {...request, model: model.id}, {signal}), signal);
    }

    async use<T>(name: string | undefined, fn: (runtime: Runtime, model: {id: string}) => Promise<T> | T, signal?: AbortSignal): Promise<T> {
        const entry = await this.acquire(name, signal);
        try {
            return await fn(entry.runtime, entry.model);
        } finally {
            this.release(entry);
        }
    }

    /** Loads the default model now (`serve` does, so the first request does not wait). */
    async preload(): Promise<ModelDescription> {
        this.preloading = "loading";
        try {
            const description = await this.use(undefined, (runtime) => runtime.health().model!);
            this.preloading = "done";
            return description;
        } catch (error) {
            this.preloading = "failed";
            this.preloadError = (error as Error).message;
            throw error;
        }
    }

    async listModels(): Promise<ModelListing[]> {
        const available = await this.options.catalog.list();
        const listed = new Set(available.map((model) => model.path));
        // A loaded model whose file went away is still served until it unloads.
        const gone = [...this.entries.values()].filter((entry) => !listed.has(entry.model.path)).map((entry) => entry.model);
        return [...available, ...gone].map((model) => {
            const entry = this.entries.get(model.path);
            const description = entry?.state === "loading" ? undefined : entry?.runtime.health().model;
            const listing: ModelListing = {
                id: model.id,
                state: entry == null ? (this.failures.has(model.path) ? "failed" : "unloaded")
                    : entry.state === "loading" ? "loading" : entry.state === "unloading" ? "unloading" : "loaded",
                isDefault: model.isDefault,
                aliases: model.names.filter((name) => name !== model.id && name !== "default"),
                sizeBytes: model.sizeBytes,
                created: description?.loadedAt ?? model.modifiedAt ?? 0
            };
            if (description != null) listing.description = description;
            const error = model.error ?? this.failures.get(model.path);
            if (error != null) listing.error = error;
            return listing;
        });
    }

    health(): ModelHostHealth {
        const entries = [...this.entries.values()];
        const fallback: RuntimeHealth = {status: this.status(), limits: this.limits, speculation: {drafted: 0, accepted: 0}};
        const defaultEntry = entries.find((entry) => entry.model.isDefault);
        const base = defaultEntry == null ? fallback : {...defaultEntry.runtime.health(), status: this.status()};
        if (this.preloadError != null && this.preloading === "failed") base.error = this.preloadError;
        const now = Date.now();
        return {
            ...base,
            models: entries.map((entry) => {
                const health: LoadedModelHealth = {
                    id: entry.model.id,
                    state: entry.state,
                    isDefault: entry.model.isDefault,
                    activeRequests: entry.leases + entry.runtime.activeGenerations,
                    slots: entry.runtime.health().slots,
                    idleSeconds: this.isIdle(entry) ? Math.round((now - entry.lastUsed) / 1000) : 0
                };
                if (entry.unloadAt != null) health.unloadInSeconds = Math.max(0, Math.round((entry.unloadAt - now) / 1000));
                return health;
            }),
            maxLoadedModels: this.maxLoaded,
            modelLoads: {...this.counts}
        };
    }

    setLimits(limits: EngineLimits) {
        this.limits = {...limits};
        for (const entry of this.entries.values())
            if (entry.state !== "loading") entry.runtime.setLimits(this.limits);
    }

    /** Refuses new work, lets every runtime finish its streams (up to its grace), frees them and the backend. */
    async dispose(options: {graceMs?: number} = {}) {
        if (this.closed) return;
        this.closed = true;
        this.emitChange();
        const entries = [...this.entries.values()];
        for (const entry of entries) {
            clearTimeout(entry.idleTimer);
            entry.controller.abort(new ShuttingDownError());
        }
        await Promise.all(entries.map(async (entry) => {
            await entry.ready.catch(() => {});
            await (entry.unloaded ?? entry.runtime.dispose(options)).catch(() => {});
            this.entries.delete(entry.model.path);
        }));
        await this.shared.dispose();
    }

    private status(): RuntimeHealth["status"] {
        if (this.closed) return "closed";
        if (this.preloading === "loading") return "loading";
        if (this.preloading === "failed") return "failed";
        return "ready";
    }

    private async acquire(name: string | undefined, signal?: AbortSignal): Promise<Entry> {
        for (;;) {
            if (this.closed) throw new ShuttingDownError();
            signal?.throwIfAborted();
            const model = await this.options.catalog.find(name);
            if (this.closed) throw new ShuttingDownError();
            if (model == null)
                throw new ModelNotFoundError(name ?? "default", (await this.options.catalog.list()).map((available) => available.id));
            const entry = this.entries.get(model.path) ?? (this.entries.size < this.maxLoaded ? this.startLoad(model) : undefined);
            if (entry?.state === "loading" || entry?.state === "ready") {
                this.lease(entry);
                try {
                    await abortable(entry.ready, signal);
                } catch (error) {
                    this.release(entry);
                    if (error instanceof EngineError || signal?.aborted) throw error;
                    throw new ModelLoadError(model.id, (error as Error).message);
                }
                return entry;
            }
            // Draining or unloading: wait until it is gone, then load it again. Not loaded and no room: make some.
            if (entry == null) {
                this.makeRoom(model);
                this.waitingForRoom++;
                try {
                    await this.nextChange(signal);
                } catch (error) {
                    // The last one waiting left: the model draining for it may serve again.
                    if (--this.waitingForRoom === 0) this.stopDraining();
                    throw error;
                }
                this.waitingForRoom--;
            } else await this.nextChange(signal);
        }
    }

    /** Nobody waits for room any more: a draining model serves again. */
    private stopDraining() {
        for (const entry of this.entries.values())
            if (entry.state === "draining") {
                entry.state = "ready";
                this.checkIdle(entry);
                this.emitChange();
            }
    }

    private startLoad(model: AvailableModel): Entry {
        const controller = new AbortController();
        let entry!: Entry;
        const runtime = new Runtime(this.shared.view(), {
            ...this.options.runtimeOptions,
            // After the generation's own bookkeeping, not inside it.
            onIdle: () => setImmediate(() => this.checkIdle(entry))
        });
        const started = performance.now();
        this.emit({type: "loading", model: model.id});
        const ready = runtime.load(this.options.loadOptions(model, controller.signal)).then(
            (description) => {
                if (entry.state === "loading") entry.state = "ready";
                runtime.setLimits(this.limits);
                this.failures.delete(model.path);
                this.counts.loads++;
                this.emit({type: "loaded", model: model.id, description, ms: Math.round(performance.now() - started)});
                this.emitChange();
                // Everyone who waited for it may have gone: start its idle clock.
                setImmediate(() => this.checkIdle(entry));
                return description;
            },
            async (error: unknown) => {
                if (this.entries.get(model.path) === entry) this.entries.delete(model.path);
                const failure = error instanceof Error ? error : new Error(String(error));
                if (!this.closed) {
                    this.failures.set(model.path, failure.message);
                    this.counts.failures++;
                    this.emit({type: "load-failed", model: model.id, error: failure});
                }
                await runtime.dispose().catch(() => {});
                this.emitChange();
                throw this.closed ? new ShuttingDownError() : failure;
            }
        );
        ready.catch(() => {});
        entry = {model, runtime, state: "loading", ready, leases: 0, lastUsed: Date.now(), controller};
        this.entries.set(model.path, entry);
        return entry;
    }

    /** Unloads the least recently used idle model; with none idle, drains the least recently used one. */
    private makeRoom(forModel: AvailableModel) {
        const loaded = [...this.entries.values()].sort((a, b) => a.lastUsed - b.lastUsed);
        const idle = loaded.find((entry) => entry.state === "ready" && this.isIdle(entry));
        if (idle != null) {
            void this.unload(idle, "lru");
            return;
        }
        if (loaded.some((entry) => entry.state === "draining" || entry.state === "unloading")) return;
        const victim = loaded.find((entry) => entry.state === "ready");
        if (victim != null) {
            victim.state = "draining";
            this.clearIdleTimer(victim);
            this.emit({type: "draining", model: victim.model.id, forModel: forModel.id});
        }
        // Everything is still loading: wait for a load to finish.
    }

    /** Frees an idle model; never rejects (a failed dispose still frees its place). */
    private unload(entry: Entry, reason: "idle" | "lru"): Promise<void> {
        entry.state = "unloading";
        this.clearIdleTimer(entry);
        entry.unloaded = entry.runtime.dispose().catch(() => {}).then(() => {
            if (this.entries.get(entry.model.path) === entry) this.entries.delete(entry.model.path);
            this.counts.unloads++;
            this.emit({type: "unloaded", model: entry.model.id, reason});
            this.emitChange();
        });
        return entry.unloaded;
    }

    private lease(entry: Entry) {
        entry.leases++;
        entry.lastUsed = Date.now();
        this.clearIdleTimer(entry);
    }

    private release(entry: Entry) {
        entry.leases--;
        entry.lastUsed = Date.now();
        this.checkIdle(entry);
    }

    private isIdle(entry: Entry) {
        return entry.leases === 0 && entry.runtime.activeGenerations === 0;
    }

    /** A model with nothing running: unload it if it is draining, else start its TTL and tell waiting loads. */
    private checkIdle(entry: Entry) {
        if (this.closed || this.entries.get(entry.model.path) !== entry || !this.isIdle(entry)) return;
        if (entry.state === "draining" && this.waitingForRoom > 0) {
            void this.unload(entry, "lru");
            return;
        }
        if (entry.state === "draining") entry.state = "ready";
        if (entry.state !== "ready") return;
        if (this.idleTtlMs > 0 && !entry.model.isDefault && entry.idleTimer == null) {
            entry.unloadAt = Date.now() + this.idleTtlMs;
            entry.idleTimer = setTimeout(() => {
                entry.idleTimer = undefined;
                entry.unloadAt = undefined;
                if (entry.state === "ready" && this.isIdle(entry) && this.entries.get(entry.model.path) === entry)
                    void this.unload(entry, "idle");
            }, this.idleTtlMs);
            entry.idleTimer.unref();
        }
        this.emitChange();
    }

    private clearIdleTimer(entry: Entry) {
        clearTimeout(entry.idleTimer);
        entry.idleTimer = undefined;
        entry.unloadAt = undefined;
    }

    /** A listener's mistake must not fail a load or an unload. */
    private emit(event: ModelPoolEvent) {
        try {
            this.options.onEvent?.(event);
        } catch {
            // ignored
        }
    }

    private emitChange() {
        for (const wake of this.changeWaiters.splice(0)) wake();
    }

    /** Resolves at the next load, unload or model going idle; rejects when `signal` aborts. */
    private nextChange(signal?: AbortSignal): Promise<void> {
        return new Promise<void>((resolve, reject) => {
            const onAbort = () => {
                this.changeWaiters = this.changeWaiters.filter((waiter) => waiter !== wake);
                reject(signal!.reason);
            };
            const wake = () => {
                signal?.removeEventListener("abort", onAbort);
                resolve();
            };
            this.changeWaiters.push(wake);
            signal?.addEventListener("abort", onAbort, {once: true});
        });
    }
}

/** `promise`, or the signal's reason as soon as it aborts (the work behind `promise` goes on). */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal == null) return promise;
    signal.throwIfAborted();
    return new Promise<T>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        signal.addEventListener("abort", onAbort, {once: true});
        promise.then(
            (value) => {
                signal.removeEventListener("abort", onAbort);
                resolve(value);
            },
            (error: unknown) => {
                signal.removeEventListener("abort", onAbort);
                reject(error);
            }
        );
    });
}
