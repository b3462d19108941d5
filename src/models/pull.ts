import {createHash} from "node:crypto";
import {createReadStream, existsSync} from "node:fs";
import {mkdir, readdir, rename, rm, stat} from "node:fs/promises";
import path from "node:path";
import {pipeline} from "node:stream/promises";
import {findCatalog, readCatalog, type CatalogEntry} from "./catalog.js";
import {assertReadableGguf} from "./gguf-check.js";
import {downloadWithNodeLlamaCpp, downloadWithTimeout, type DownloadProgress, type ModelDownloadFn} from "./download.js";

/**
 * `edge-llm pull`: a catalog name, `hf:user/repo:quant`, `hf:user/repo/file.gguf` or an
 * http(s) URL → a verified file in the models folder. Downloads go to `<modelsDir>/.downloads/`
 * first, so a partial or unverified file is never picked up as a model; only a finished (and,
 * where a sha256 is known, matching) file is moved into the folder.
 */

/** Folder inside the models folder where downloads live until they are complete and verified. */
export const DOWNLOADS_DIR = ".downloads";

export class PullError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "PullError";
    }
}

export interface PullOptions {
    /** Catalog id, `hf:` URI or http(s) URL. Either this or `entry`. */
    source?: string;
    /** A catalog entry already read (the default model). */
    entry?: CatalogEntry;
    modelsDir: string;
    /** Seconds without an answer or progress before giving up. */
    timeoutSeconds: number;
    /** Expected sha256 (hex); overrides the catalog's. */
    sha256?: string;
    /** Default: `<modelsDir>/catalog.json`, else the shipped catalog. */
    catalogFile?: string;
    /** Download again even when the file is already in the models folder. */
    force?: boolean;
    /** Default: node-llama-cpp's downloader. */
    download?: ModelDownloadFn;
    /** Progress bar on stderr. Default true. */
    progressBar?: boolean;
    onProgress?(progress: DownloadProgress): void;
}

export interface PulledModel {
    path: string;
    sizeBytes: number;
    /** Hex sha256 of the file (not computed for a file already present without a known checksum). */
    sha256?: string;
    /** Whether the sha256 was checked against a known value. */
    verified: boolean;
    /** The file was there already; nothing was downloaded. */
    alreadyPresent: boolean;
    entry?: CatalogEntry;
}

export async function pullModel(options: PullOptions): Promise<PulledModel> {
    const entry = options.entry ?? await resolveSource(options);
    const uri = entry?.uri ?? options.source!;
    const expected = (options.sha256 ?? entry?.sha256)?.toLowerCase();
    const knownName = entry?.file ?? fileNameOf(uri);
    const modelsDir = path.resolve(options.modelsDir);

    if (knownName != null && !options.force && existsSync(path.join(modelsDir, knownName))) {
        const file = path.join(modelsDir, knownName);
        const sha256 = expected == null ? undefined : await sha256File(file);
        if (sha256 !== expected)
            throw new PullError(`${file} exists but its sha256 is ${sha256}, not ${expected}; delete it or pull with --force`);
        return {path: file, sizeBytes: (await stat(file)).size, sha256, verified: expected != null, alreadyPresent: true, entry};
    }

    const staging = path.join(modelsDir, DOWNLOADS_DIR);
    await mkdir(staging, {recursive: true});
    const downloaded = await downloadWithTimeout(options.download ?? downloadWithNodeLlamaCpp, uri, staging, options.timeoutSeconds, {
        progressBar: options.progressBar,
        onProgress: options.onProgress
    });

    try {
        await assertReadableGguf(downloaded);
    } catch (error) {
        await rm(downloaded, {force: true});
        throw new PullError(`${uri} did not give a GGUF model (${(error as Error).message}); the download was deleted`);
    }
    const sha256 = await sha256File(downloaded);
    if (expected != null && sha256 !== expected) {
        await rm(downloaded, {force: true});
        throw new PullError(`checksum mismatch for ${path.basename(downloaded)} from ${uri}: expected sha256 ${expected}, got ${sha256}. ` +
            "The download was deleted; pull again, and if it fails the same way the file on the server differs from the catalog's.");
    }
    const target = path.join(modelsDir, entry?.file ?? path.basename(downloaded));
    for (const part of await splitParts(downloaded))
        await rename(part, path.join(modelsDir, path.basename(part)));
    await rename(downloaded, target);
    return {path: target, sizeBytes: (await stat(target)).size, sha256, verified: expected != null, alreadyPresent: false, entry};
}

/** A catalog id (case-insensitive) → its entry; URIs and URLs pass through (no entry). */
async function resolveSource(options: PullOptions): Promise<CatalogEntry | undefined> {
    const source = options.source?.trim();
    if (source == null || source.length === 0)
        throw new PullError("nothing to pull: give a catalog name, hf:user/repo:quant, hf:user/repo/file.gguf or an https URL");
    if (/^(hf:|https?:\/\/)/i.test(source)) return undefined;
    const catalogFile = options.catalogFile ?? findCatalog(options.modelsDir);
    const catalog = await readCatalog(catalogFile);
    const entry = catalog.models.find((model) => model.id.toLowerCase() === source.toLowerCase());
    if (entry == null)
        throw new PullError(`"${source}" is not in the model catalog (${catalogFile}). Catalog names: ${catalog.models.map((model) => model.id).join(", ")}. ` +
            "Or pull hf:user/repo:quant, hf:user/repo/file.gguf or an https URL.");
    return entry;
}

/** The file name a URI will be saved under, when the URI names one. */
function fileNameOf(uri: string): string | undefined {
    if (/^https?:\/\//i.test(uri)) {
        const name = path.posix.basename(new URL(uri).pathname);
        return /\.gguf$/i.test(name) ? decodeURIComponent(name) : undefined;
    }
    const match = /^hf:[^/]+\/[^/:]+\/(?:.*\/)?([^/#]+\.gguf)(?:#.*)?$/i.exec(uri);
    return match?.[1];
}

/** Other parts of a split model (`name-00001-of-00003.gguf` → parts 2 and 3) beside `file`. */
async function splitParts(file: string): Promise<string[]> {
    const match = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/.exec(path.basename(file));
    if (match == null) return [];
    const names = await readdir(path.dirname(file));
    const pattern = new RegExp(`^${match[1]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-\\d{5}-of-${match[3]}\\.gguf$`);
    return names.filter((name) => pattern.test(name) && name !== path.basename(file)).map((name) => path.join(path.dirname(file), name));
}

export async function sha256File(file: string): Promise<string> {
    const hash = createHash("sha256");
    await pipeline(createReadStream(file), hash);
    return hash.digest("hex");
}
