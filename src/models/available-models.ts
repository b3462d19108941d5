import {stat} from "node:fs/promises";
import path from "node:path";
import {listModelFiles} from "./registry.js";

/** One model clients may name in `model`, loaded or not. */
export interface AvailableModel {
    /** The name `/v1/models` lists and responses report. */
    id: string;
    /** Absolute path of the GGUF file; one loaded runtime per path. */
    path: string;
    /** Every name that selects it: the id, aliases, the file name with and without `.gguf`. */
    names: string[];
    /** The model used when a request names none (or names "default"). */
    isDefault: boolean;
    /** A draft model for speculative decoding that shares this model's tokenizer. */
    draftPath?: string;
    sizeBytes?: number;
    /** Unix seconds of the file's last change. */
    modifiedAt?: number;
    /** Set when the file is missing or unreadable. */
    error?: string;
}

export type ModelEntrySetting = string | {path: string; draft?: string};

export interface ModelDirectoryOptions {
    /** The model served by default: `serve --model` / the first file in the folder / the catalog download. */
    defaultModel?: {path: string; id: string; draftPath?: string};
    /** Named models from the settings: name → path (or `{path, draft}`). */
    models?: Record<string, ModelEntrySetting>;
    /** Every `*.gguf` in this folder is available under its file name. */
    modelsDir?: string;
}

/** Which models exist: the default model, the `models` setting and the models folder, read on every call. */
export class ModelDirectory {
    constructor(private readonly options: ModelDirectoryOptions) {}

    /** The default model first, then named models, then the folder's files by name; one entry per file, with its size. */
    async list(): Promise<AvailableModel[]> {
        const list = await this.collect();
        await Promise.all(list.map(async (model) => {
            try {
                const info = await stat(model.path);
                model.sizeBytes = info.size;
                model.modifiedAt = Math.floor(info.mtimeMs / 1000);
            } catch (error) {
                model.error = (error as NodeJS.ErrnoException).code === "ENOENT" ? `file not found: ${model.path}` : (error as Error).message;
            }
        }));
        return list;
    }

    /** The model `name` selects; no name: the default model, else the first listed. */
    async find(name: string | undefined): Promise<AvailableModel | undefined> {
        const list = await this.collect();
        if (name == null) return list.find((model) => model.isDefault) ?? list[0];
        return list.find((model) => model.names.includes(name));
    }

    private async collect(): Promise<AvailableModel[]> {
        const byPath = new Map<string, AvailableModel>();
        const taken = new Set<string>();
        const add = (file: string, id: string, extra: {isDefault?: boolean; draftPath?: string} = {}) => {
            const absolute = path.resolve(file);
            const base = path.basename(absolute);
            let model = byPath.get(absolute);
            if (model == null) {
                model = {id, path: absolute, names: [], isDefault: false};
                byPath.set(absolute, model);
            }
            // A name belongs to the first model that claims it (default, then settings, then folder).
            for (const name of [id, base, base.replace(/\.gguf$/i, "")])
                if (!taken.has(name)) {
                    taken.add(name);
                    model.names.push(name);
                }
            model.isDefault ||= extra.isDefault === true;
            model.draftPath ??= extra.draftPath;
        };

        const {defaultModel, models = {}, modelsDir} = this.options;
        if (defaultModel != null) {
            add(defaultModel.path, defaultModel.id, {isDefault: true, draftPath: defaultModel.draftPath});
            taken.add("default");
            byPath.get(path.resolve(defaultModel.path))!.names.push("default");
        }
        for (const [name, entry] of Object.entries(models)) {
            const {path: file, draft} = typeof entry === "string" ? {path: entry, draft: undefined} : entry;
            add(file, name, {draftPath: draft == null ? undefined : path.resolve(draft)});
        }
        if (modelsDir != null)
            for (const file of await listModelFiles(modelsDir))
                add(file, path.basename(file).replace(/\.gguf$/i, ""));

        const list = [...byPath.values()].filter((model) => model.names.length > 0);
        // A model whose preferred id another one took goes by its first free name.
        for (const model of list)
            if (!model.names.includes(model.id)) model.id = model.names[0]!;
        return list;
    }
}
