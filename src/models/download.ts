import cliProgress from "cli-progress";
import {createModelDownloader} from "node-llama-cpp";
import {formatBytes} from "./registry.js";

/**
 * The network step of getting a model: node-llama-cpp's downloader (ipull underneath: parallel
 * ranged requests, resumable from its `.ipull` file), bounded by a stall timeout because its
 * `hf:` resolver and its retries can hang for minutes offline and ignore abort signals.
 */

export interface DownloadProgress {
    downloadedBytes: number;
    totalBytes: number;
}

export interface ModelDownloadRequest {
    uri: string;
    dirPath: string;
    signal: AbortSignal;
    onProgress(progress: DownloadProgress): void;
}

/** Downloads `uri` into `dirPath` and resolves to the model file's path. Injectable for tests. */
export type ModelDownloadFn = (request: ModelDownloadRequest) => Promise<string>;

export interface DownloadWithTimeoutOptions {
    /** A progress bar on stderr. Default true. */
    progressBar?: boolean;
    onProgress?(progress: DownloadProgress): void;
}

/**
 * Runs `download` but gives up when it shows no sign of life for `timeoutSeconds`: first while
 * it connects, then whenever progress stalls. The abandoned attempt is aborted and cancelled
 * (its partial file stays, so the next attempt resumes), but may linger in the background.
 */
export function downloadWithTimeout(
    download: ModelDownloadFn, uri: string, dirPath: string, timeoutSeconds: number, options: DownloadWithTimeoutOptions = {}
): Promise<string> {
    const controller = new AbortController();
    const bar = options.progressBar === false ? undefined : new cliProgress.SingleBar({
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
            if (barStarted) bar?.stop();
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
            onProgress(progress) {
                const {downloadedBytes, totalBytes} = progress;
                // Any change is a sign of life: a retried chunk may count down before it counts up.
                if (controller.signal.aborted || downloadedBytes === lastBytes) return;
                lastBytes = downloadedBytes;
                arm(`the download stalled: no data for ${timeoutSeconds} s`);
                options.onProgress?.(progress);
                if (bar == null) return;
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

/** The real network step: node-llama-cpp's downloader (hf: URIs, http(s) URLs, split files, resumable). */
export const downloadWithNodeLlamaCpp: ModelDownloadFn = async ({uri, dirPath, signal, onProgress}) => {
    const downloader = await createModelDownloader({
        modelUri: uri,
        dirPath,
        // A finished file is moved out of `dirPath` by the caller; a partial one resumes.
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
