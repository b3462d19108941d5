import {GgmlType, GgufInsights, readGgufFileInfo, type GgufFileInfo, type Llama} from "node-llama-cpp";
import {formatBytes} from "./registry.js";

/**
 * Will the model and the KV cache for the requested context fit in free memory? Checked before
 * loading, so a too-large request ends in a clear message (or a smaller context) instead of the
 * process being killed for lack of memory.
 */

/**
 * "shrink": lower the context to what fits (a warning names the numbers), refuse only when even
 * the smallest context does not fit; "error": refuse whenever the requested context does not fit;
 * "off": no check (llama.cpp's own allocation failures then decide).
 */
export type MemoryFitPolicy = "shrink" | "error" | "off";

export interface MemoryFitInput {
    /** Bytes the weights take in the memory pool we compare against. */
    modelBytes: number;
    /** Bytes the context (KV cache for all sequences plus compute buffers) takes at `contextSize` tokens per sequence. */
    contextBytes(contextSize: number): number;
    /** Tokens per sequence asked for. */
    contextSize: number;
    sequences: number;
    freeBytes: number;
    policy: Exclude<MemoryFitPolicy, "off">;
    /** Smallest context worth shrinking to. Default 256 (llama.cpp's cell granularity). */
    minContextSize?: number;
    /** Shrunk contexts are multiples of this. Default 256. */
    stepTokens?: number;
    /** What the numbers are about, for messages: e.g. "model.gguf" and "RAM". */
    modelName?: string;
    memoryName?: string;
}

export type MemoryFitDecision =
    | {action: "fit"; contextSize: number; modelBytes: number; contextBytes: number; freeBytes: number}
    | {action: "shrink"; contextSize: number; requestedContextSize: number; modelBytes: number; contextBytes: number; freeBytes: number; message: string}
    | {action: "refuse"; modelBytes: number; contextBytes: number; freeBytes: number; message: string};

/** The pure decision: fit as asked, shrink the context, or refuse — with the numbers. */
export function decideMemoryFit(input: MemoryFitInput): MemoryFitDecision {
    const {modelBytes, freeBytes, sequences} = input;
    const step = input.stepTokens ?? 256;
    const min = Math.min(input.minContextSize ?? 256, input.contextSize);
    const contextBytes = input.contextBytes(input.contextSize);
    if (modelBytes + contextBytes <= freeBytes)
        return {action: "fit", contextSize: input.contextSize, modelBytes, contextBytes, freeBytes};

    const model = input.modelName ?? "the model";
    const memory = input.memoryName ?? "memory";
    const need = `${model} needs ${formatBytes(modelBytes)} for its weights and ${formatBytes(contextBytes)} for ${sequences} × ${input.contextSize} ` +
        `tokens of context (KV cache and buffers), ${formatBytes(modelBytes + contextBytes)} in all, but only ${formatBytes(freeBytes)} of ${memory} is free`;
    const advice = "Lower the context (--ctx-size) or the sequences (--parallel), use a quantized KV cache (--kv-cache-type q8_0) " +
        "or a smaller or more quantized model, or free memory";

    if (input.policy === "error")
        return {action: "refuse", modelBytes, contextBytes, freeBytes,
            message: `Not enough memory: ${need}. ${advice}; memoryFit "shrink" would lower the context to what fits.`};

    const largest = largestFittingContext(input, min, step);
    if (largest == null) {
        const smallest = input.contextBytes(min);
        return {action: "refuse", modelBytes, contextBytes, freeBytes,
            message: `Not enough memory: ${need}; even ${sequences} × ${min} tokens of context (${formatBytes(modelBytes + smallest)} in all) do not fit. ` +
                "Use a smaller or more quantized model, fewer sequences (--parallel), or free memory."};
    }
    const shrunkBytes = input.contextBytes(largest);
    return {action: "shrink", contextSize: largest, requestedContextSize: input.contextSize, modelBytes, contextBytes: shrunkBytes, freeBytes,
        message: `Context lowered from ${input.contextSize} to ${largest} tokens per sequence to fit memory: ${need}; ` +
            `${sequences} × ${largest} tokens take ${formatBytes(shrunkBytes)}. Set memoryFit "error" to refuse instead.`};
}

/** The largest multiple of `step` below the requested size that fits, else `min` if that fits; `contextBytes` must grow with the size. */
function largestFittingContext(input: MemoryFitInput, min: number, step: number): number | undefined {
    const fits = (size: number) => input.modelBytes + input.contextBytes(size) <= input.freeBytes;
    let best = fits(min) ? min : undefined;
    let low = 1;
    let high = Math.floor((input.contextSize - 1) / step);
    while (low <= high) {
        const middle = Math.floor((low + high) / 2);
        if (fits(middle * step)) {
            if (middle * step >= min) best = Math.max(best ?? 0, middle * step);
            low = middle + 1;
        } else high = middle - 1;
    }
    return best;
}

export interface MemoryEstimateOptions {
    contextSize: number;
    sequences: number;
    flashAttention?: boolean;
    /** KV cache element type. Default "f16". */
    kvCacheType?: "f16" | "q8_0" | "q4_0";
    /** Whether the weights and KV go to a GPU (fully offloaded) or stay in RAM. */
    onGpu: boolean;
    /** The context's batch size (its compute buffers scale with it); default node-llama-cpp's. */
    batchSize?: number;
}

export interface MemoryEstimate {
    modelBytes: number;
    contextBytes(contextSize: number): number;
    freeBytes: number;
    memoryName: string;
}

/**
 * node-llama-cpp's GGUF insights for the weights and the context, against free RAM (CPU) or
 * free VRAM plus free RAM (GPU: node-llama-cpp offloads what fits and keeps the rest in RAM).
 */
export async function estimateMemory(llama: Llama, info: GgufFileInfo, options: MemoryEstimateOptions): Promise<MemoryEstimate> {
    const insights = await GgufInsights.from(info, llama);
    const gpuLayers = options.onGpu ? insights.totalLayers : 0;
    const model = insights.estimateModelResourceRequirements({gpuLayers});
    const kvType = {f16: GgmlType.F16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0}[options.kvCacheType ?? "f16"];
    const ram = await llama.getRamState();
    const vram = options.onGpu ? await llama.getVramState() : undefined;
    return {
        modelBytes: model.cpuRam + model.gpuVram,
        contextBytes: (contextSize) => {
            const context = insights.estimateContextResourceRequirements({
                contextSize, sequences: options.sequences, modelGpuLayers: gpuLayers, flashAttention: options.flashAttention, batchSize: options.batchSize,
                kvCacheKeyType: kvType, kvCacheValueType: kvType
            });
            return Math.ceil(context.cpuRam + context.gpuVram);
        },
        freeBytes: ram.free + (vram?.unifiedSize ? 0 : (vram?.free ?? 0)),
        memoryName: vram == null || vram.unifiedSize ? "RAM" : "RAM and VRAM"
    };
}

/** Reads a GGUF header without the big tokenizer arrays (enough for insights). */
export function readModelInfo(file: string): Promise<GgufFileInfo> {
    return readGgufFileInfo(file, {logWarnings: false});
}
