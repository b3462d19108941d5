import path from "node:path";
import type {Settings} from "../config/schema.js";
import type {Logger} from "../logger.js";
import {ModelDirectory} from "../models/available-models.js";
import {ModelPool, type ModelPoolEvent} from "../runtime/model-pool.js";
import {createBackend, modelLoadOptions, runtimeOptions} from "./serve.js";

/**
 * The models `serve` offers: the default model (`defaultModelPath`), the `models` setting and the
 * models folder, loaded on first use, at most `maxLoadedModels` at once, unloaded after
 * `modelIdleTtlSeconds` idle. Every runtime gets the same runtime and load settings; the draft
 * model belongs to the default model (a draft must share its target's tokenizer) unless a
 * `models` entry names its own.
 */
export async function createModelPool(settings: Settings, logger: Logger, defaultModelPath: string, onLoaded?: () => void): Promise<ModelPool> {
    const catalog = new ModelDirectory({
        defaultModel: {
            path: defaultModelPath,
            id: settings.modelAlias ?? path.basename(defaultModelPath).replace(/\.gguf$/i, ""),
            draftPath: settings.draft
        },
        models: settings.models,
        modelsDir: settings.modelsDir
    });
    return new ModelPool({
        backend: await createBackend(settings, logger),
        catalog,
        runtimeOptions: runtimeOptions(settings, logger),
        loadOptions: (model, signal) => ({...modelLoadOptions(settings, model.path, signal), id: model.id, draftPath: model.draftPath}),
        maxLoaded: settings.maxLoadedModels,
        idleTtlMs: settings.modelIdleTtlSeconds * 1000,
        onEvent: (event) => {
            logPoolEvent(logger, event);
            if (event.type === "loaded") onLoaded?.();
        }
    });
}

function logPoolEvent(logger: Logger, event: ModelPoolEvent) {
    switch (event.type) {
        case "loading":
            return logger.info({model: event.model}, `loading model ${event.model}`);
        case "loaded":
            return logger.info({model: event.model, ms: event.ms, path: event.description.path}, `loaded model ${event.model} in ${event.ms} ms`);
        case "load-failed":
            return logger.warn({model: event.model, err: event.error}, `model ${event.model} failed to load: ${event.error.message}`);
        case "draining":
            return logger.info({model: event.model, for: event.forModel}, `model ${event.model} takes no new requests until its streams end, to make room for ${event.forModel}`);
        case "unloaded":
            return logger.info({model: event.model, reason: event.reason}, `unloaded model ${event.model} (${event.reason === "idle" ? "idle TTL" : event.reason === "lru" ? "room for another model" : event.reason})`);
    }
}
