import {existsSync} from "node:fs";
import path from "node:path";
import {findCatalog, httpUrlFor, readDefaultCatalogEntry, type CatalogEntry} from "./catalog.js";
import type {ModelDownloadFn} from "./download.js";
import {pullModel} from "./pull.js";
import {formatBytes, listModelFiles} from "./registry.js";

/**
 * Which model to serve: an explicit path (flag, env or config) wins; else the first *.gguf in the
 * models folder; else the catalog's default model is downloaded — bounded by a timeout, because
 * node-llama-cpp's resolver and downloader can hang offline and ignore abort signals.
 */

export type {ModelDownloadFn, ModelDownloadRequest} from "./download.js";

export interface ResolveModelOptions {
    /** Explicit model path; used as is. */
    model?: string;
    modelsDir: string;
    /** Seconds without any answer (or progress) from the download before giving up. */
    downloadTimeoutSeconds: number;
    /** Default: node-llama-cpp's downloader. */
    download?: ModelDownloadFn;
    /** Default: `<modelsDir>/catalog.json`, else the catalog shipped with edge-llm. */
    catalogFile?: string;
    /** The command named in the help text, e.g. "serve" or "chat". Default "serve". */
    command?: string;
    /** Status lines (download start and end). Default: stderr. */
    log?: (message: string) => void;
}

export interface ResolvedModel {
    path: string;
    source: "explicit" | "models-dir" | "downloaded";
}

/** No model could be found or fetched; the message says what to do. */
export class ModelResolutionError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ModelResolutionError";
    }
}

export async function resolveModel(options: ResolveModelOptions): Promise<ResolvedModel> {
    if (options.model != null) {
        const file = path.resolve(options.model);
        if (!existsSync(file))
            throw new ModelResolutionError(`Model file not found: ${file}\n(\`edge-llm models\` lists the models in ${path.resolve(options.modelsDir)})`);
        return {path: file, source: "explicit"};
    }

    const found = await listModelFiles(options.modelsDir);
    if (found.length > 0)
        return {path: path.resolve(found[0]!), source: "models-dir"};

    const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
    let entry: CatalogEntry | undefined;
    try {
        entry = await readDefaultCatalogEntry(options.catalogFile ?? findCatalog(options.modelsDir));
        log(`No .gguf file in ${path.resolve(options.modelsDir)}; downloading the default model ${entry.name}` +
            `${entry.approxSizeBytes == null ? "" : ` (~${formatBytes(entry.approxSizeBytes)})`} from ${entry.url ?? entry.uri}`);
        const pulled = await pullModel({
            entry,
            modelsDir: options.modelsDir,
            timeoutSeconds: options.downloadTimeoutSeconds,
            download: options.download
        });
        log(`Downloaded ${pulled.path}`);
        return {path: pulled.path, source: "downloaded"};
    } catch (error) {
        throw new ModelResolutionError(helpText(options, entry, (error as Error).message));
    }
}

function helpText(options: ResolveModelOptions, entry: CatalogEntry | undefined, reason: string) {
    const dir = options.modelsDir;
    const what = entry == null ? "the default model" : `the default model (${entry.name})`;
    const lines = [
        `No model to ${options.command === "chat" ? "chat with" : "serve"}: no --model given and no .gguf file in ${path.resolve(dir)},`,
        `and downloading ${what} failed: ${reason}`,
        "Get a model in one of these ways:",
        `  - use a file you have:   edge-llm ${options.command ?? "serve"} --model path/to/model.gguf`,
        `  - put a .gguf file into ${dir}${path.sep} (the first one, by name, is used)`
    ];
    const url = entry == null ? undefined : entry.url ?? httpUrlFor(entry.uri);
    if (url != null)
        lines.push(`  - download it yourself:  curl -L -o ${path.join(dir, entry?.file ?? path.basename(new URL(url).pathname))} ${url}`);
    lines.push("  (`edge-llm models` lists what is in the models folder; models/catalog.json lists recommended models)");
    return lines.join("\n");
}
