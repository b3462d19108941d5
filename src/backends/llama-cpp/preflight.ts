import {stat} from "node:fs/promises";
import * as nodeLlamaCpp from "node-llama-cpp";
import {GgufInsights, readGgufFileInfo, type GgufFileInfo, type Llama} from "node-llama-cpp";
import {assertReadableGguf, ModelFileError} from "../../models/gguf-check.js";
import {formatBytes} from "../../models/registry.js";

export interface PreflightOptions {
    /** Refuse a model whose estimated memory exceeds what is free. Default true. */
    checkMemory?: boolean;
}

/** Architectures this build of llama.cpp knows (node-llama-cpp's list matches its llama.cpp). */
const knownArchitectures: ReadonlySet<string> = new Set(
    Object.values((nodeLlamaCpp as unknown as {GgufArchitectureType: Record<string, string>}).GgufArchitectureType)
);

/**
 * Checks a model file before llama.cpp loads it, so each way it can be wrong gets its own clear
 * message (llama.cpp itself only says "Failed to load model"): missing, not GGUF, an unreadable
 * header, an architecture llama.cpp does not know, a truncated file, and a model larger than the
 * free memory (estimated from the header, nothing is loaded).
 */
export async function preflightModel(path: string, llama: Llama, {checkMemory = true}: PreflightOptions = {}): Promise<void> {
    await assertReadableGguf(path);
    let info: GgufFileInfo;
    try {
        info = await readGgufFileInfo(path, {logWarnings: false, sourceType: "filesystem"});
    } catch (error) {
        throw new ModelFileError(`${path} is not a valid GGUF file: its header cannot be read (${(error as Error).message}).`);
    }
    const architecture = String(info.metadata.general?.architecture ?? "");
    if (!knownArchitectures.has(architecture))
        throw new ModelFileError(architecture.length === 0
            ? `${path} names no architecture (general.architecture); llama.cpp cannot load it.`
            : `${path} is a '${architecture.slice(0, 64)}' model, an architecture this llama.cpp build does not support.`);

    const insights = await GgufInsights.from(info, llama);
    const fileSize = (await stat(path)).size;
    const expected = (info.infoEndOffset ?? 0) + insights.modelSize;
    if (fileSize < expected)
        throw new ModelFileError(`${path} is truncated: it has ${formatBytes(fileSize)} but its header describes ${formatBytes(expected)} ` +
            `(an interrupted download or copy?).`);

    if (!checkMemory) return;
    const onGpu = llama.gpu !== false;
    const required = insights.estimateModelResourceRequirements({gpuLayers: onGpu ? insights.totalLayers : 0});
    const ram = await llama.getRamState();
    const vram = onGpu ? await llama.getVramState() : {free: 0};
    // On a GPU the layers may still be split between VRAM and RAM: what matters is the sum.
    const needed = required.cpuRam + required.gpuVram;
    const free = ram.free + vram.free;
    if (needed > free)
        throw new ModelFileError(`${path} needs about ${formatBytes(needed)} of memory to load, and only ${formatBytes(free)} is free. ` +
            `Use a smaller (or more quantized) model, free memory, or set checkModelMemory to false to try anyway.`);
}
