import {stat} from "node:fs/promises";
import * as nodeLlamaCpp from "node-llama-cpp";
import {GgufInsights, readGgufFileInfo, type GgufFileInfo, type Llama} from "node-llama-cpp";
import {assertReadableGguf, ModelFileError} from "../../models/gguf-check.js";
import {formatBytes} from "../../models/registry.js";

/** Architectures this build of llama.cpp knows (node-llama-cpp's list matches its llama.cpp). */
const knownArchitectures: ReadonlySet<string> = new Set(
    Object.values((nodeLlamaCpp as unknown as {GgufArchitectureType: Record<string, string>}).GgufArchitectureType)
);

/**
 * Checks a model file before llama.cpp loads it, so each way it can be wrong gets its own clear
 * message (llama.cpp itself only says "Failed to load model"): missing, not GGUF, an unreadable
 * header, an architecture llama.cpp does not know and a truncated file. Memory is checked next, by
 * the memory fit (src/models/memory-fit.ts).
 */
export async function preflightModel(path: string, llama: Llama): Promise<void> {
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
}
