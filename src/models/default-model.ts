import {existsSync} from "node:fs";
import {mkdir, readFile} from "node:fs/promises";
import path from "node:path";
import {fileURLToPath} from "node:url";
import cliProgress from "cli-progress";
import {createModelDownloader} from "node-llama-cpp";
import {z} from "zod";
import {formatBytes, listModelFiles} from "./registry.js";

/**
 * Which model to serve: an explicit path (flag, env or config) wins; else the first *.gguf in the
 * models folder; else the catalog's default model is downloaded — bounded by a timeout, because
 * node-llama-cpp's resolver and downloader can hang offline and ignore abort signals.
 */

export interface ModelDownloadRequest {
    uri: string;
    dirPath: string;
    signal: AbortSignal;
    onProgress(progress: {downloadedBytes: number; totalBytes: number}): void;
}

/** Downloads `uri` into `dirPath` and resolves to the model file's path. Injectable for tests. */
export type ModelDownloadFn = (request: ModelDownloadRequest) => Promise<string>;

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

const catalogEntry = z.object({
    id: z.string(),
    name: z.string(),
    uri: z.string(),
    url: z.string().optional(),
    file: z.string().optional(),
    approxSizeBytes: z.number().optional()
}).loose();
const catalogSchema = z.object({default: z.string(), models: z.array(catalogEntry)}).loose();
export type CatalogEntry = z.infer<typeof catalogEntry>;

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
        await mkdir(options.modelsDir, {recursive: true});
        const file = await downloadWithTimeout(options.download ?? downloadWithNodeLlamaCpp, entry.uri, options.modelsDir, options.downloadTimeoutSeconds);
        log(`Downloaded ${file}`);
        return {path: path.resolve(file), source: "downloaded"};
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

function findCatalog(modelsDir: string): string {
    const candidates = [
        path.join(modelsDir, "catalog.json"),
        // The catalog shipped with edge-llm: src/models/ under tsx, dist/src/models/ when built.
        fileURLToPath(new URL("../../models/catalog.json", import.meta.url)),
        fileURLToPath(new URL("../../../models/catalog.json", import.meta.url))
    ];
    return candidates.find((file) => existsSync(file)) ?? candidates[0]!;
}

async function readDefaultCatalogEntry(file: string): Promise<CatalogEntry> {
    let parsed: unknown;
    try {
        parsed = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
        throw new Error(`cannot read the model catalog ${file}: ${(error as Error).message}`);
    }
    const catalog = catalogSchema.safeParse(parsed);
    if (!catalog.success)
        throw new Error(`the model catalog ${file} is malformed: ${catalog.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`);
    const entry = catalog.data.models.find((model) => model.id === catalog.data.default);
    if (entry == null)
        throw new Error(`the model catalog ${file} names "${catalog.data.default}" as default but has no such model`);
    return entry;
}

/** `hf:user/repo/path/file.gguf` → its Hugging Face download URL; other forms need the resolver. */
function httpUrlFor(uri: string): string | undefined {
    if (/^https?:\/\//.test(uri)) return uri;
    const match = /^hf:([^/]+\/[^/:]+)\/([^#]+\.gguf)(?:#(.+))?$/.exec(uri);
    return match == null ? undefined : `https://huggingface.co/${match[1]}/resolve/${match[3] ?? "main"}/${match[2]}`;
}

/**
 * Runs `download` but gives up when it shows no sign of life for `timeoutSeconds`: first while
 * it connects, then whenever progress stalls. The abandoned attempt is aborted and cancelled,
 * but may linger — the caller is expected to exit rather than wait for it.
 */
export function downloadWithTimeout(download: ModelDownloadFn, uri: string, dirPath: string, timeoutSeconds: number): Promise<string> {
    const controller = new AbortController();
    const bar = new cliProgress.SingleBar({
        stream: process.stderr,
        format: "Downloading [{bar}] {percentage}% | {done} of {size} | ETA {eta_formatted}",
        hideCursor: true
    }, cliProgress.Presets.shades_classic);
    let barStarted = false;

    return new Promise<string>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        let lastBytes = -1;
        const finish = (error?: Error, file?: string) => {
            clearTimeout(timer);
            if (barStarted) bar.stop();
            barStarted = false;
            if (error != null) {
                controller.abort(error);
                reject(error);
            } else resolve(file!);
        };
        const arm = (why: string) => {
            clearTimeout(timer);
            timer = setTimeout(() => finish(new Error(why)), timeoutSeconds * 1000);
        };
        arm(`no answer from the download server within ${timeoutSeconds} s (offline, or the host is unreachable)`);

        download({
            uri,
            dirPath,
            signal: controller.signal,
            onProgress({downloadedBytes, totalBytes}) {
                if (controller.signal.aborted || downloadedBytes <= lastBytes) return;
                lastBytes = downloadedBytes;
                arm(`the download stalled: no data for ${timeoutSeconds} s`);
                const payload = {done: formatBytes(downloadedBytes), size: formatBytes(totalBytes)};
                if (!barStarted) {
                    bar.start(Math.max(totalBytes, 1), downloadedBytes, payload);
                    barStarted = true;
                } else bar.update(downloadedBytes, payload);
            }
        }).then(
            (file) => {
                if (!controller.signal.aborted) finish(undefined, file);
            },
            (error: unknown) => {
                if (!controller.signal.aborted) finish(error instanceof Error ? error : new Error(String(error)));
            }
        );
    });
}

/** The real network step: node-llama-cpp's downloader (hf: URIs, split files, resumable). */
export const downloadWithNodeLlamaCpp: ModelDownloadFn = async ({uri, dirPath, signal, onProgress}) => {
    const downloader = await createModelDownloader({
        modelUri: uri,
        dirPath,
        skipExisting: true,
        deleteTempFileOnCancel: false,
        onProgress: ({downloadedSize, totalSize}) => onProgress({downloadedBytes: downloadedSize, totalBytes: totalSize})
    });
    const cancel = () => void downloader.cancel().catch(() => {});
    if (signal.aborted) {
        cancel();
        throw signal.reason;
    }
    signal.addEventListener("abort", cancel, {once: true});
    return downloader.download({signal});
};
