import {readGgufFileInfo, type Llama} from "node-llama-cpp";
import {decideMemoryFit, estimateMemory, type MemoryFitDecision} from "./memory-fit.js";
import {describeModelFile, type ModelFileSummary} from "./registry.js";
import {kvBytesPerToken, readKvShape} from "../backends/llama-cpp/kv-cache.js";

/** `edge-llm models inspect`: the summary, the GGUF metadata that matters, and the memory estimate on this machine. */
export interface ModelInspection extends ModelFileSummary {
    name?: string;
    layers?: number;
    embeddingLength?: number;
    heads?: number;
    kvHeads?: number;
    vocabularySize?: number;
    chatTemplate: boolean;
    /** f16 KV cache bytes per token of context (all layers, keys and values). */
    kvBytesPerToken?: number;
    /** Every metadata key except the big tokenizer arrays. */
    metadata: Record<string, unknown>;
    memory?: {
        contextSize: number;
        sequences: number;
        onGpu: boolean;
        modelBytes: number;
        contextBytes: number;
        freeBytes: number;
        memoryName: string;
        decision: MemoryFitDecision["action"];
        /** The context that would be used under memoryFit "shrink". */
        fittingContextSize?: number;
        message?: string;
    };
}

export async function inspectModel(file: string, options: {llama?: Llama; contextSize?: number; sequences: number}): Promise<ModelInspection> {
    const summary = await describeModelFile(file);
    if (summary.error != null) return {...summary, chatTemplate: false, metadata: {}};
    const info = await readGgufFileInfo(file, {logWarnings: false});
    const architecture = info.architectureMetadata as Record<string, unknown>;
    const attention = (architecture.attention ?? {}) as Record<string, unknown>;
    const tokenizer = info.metadata.tokenizer as unknown as {ggml?: {tokens?: readonly unknown[]}; chat_template?: unknown} | undefined;
    const kvShape = readKvShape(info.metadata);
    const inspection: ModelInspection = {
        ...summary,
        name: typeof info.metadata.general?.name === "string" ? info.metadata.general.name : undefined,
        layers: numberOr(architecture.block_count),
        embeddingLength: numberOr(architecture.embedding_length),
        heads: numberOr(attention.head_count),
        kvHeads: numberOr(attention.head_count_kv) ?? numberOr(attention.head_count),
        vocabularySize: tokenizer?.ggml?.tokens?.length,
        chatTemplate: typeof tokenizer?.chat_template === "string",
        kvBytesPerToken: kvShape == null ? undefined : kvBytesPerToken(kvShape, "f16"),
        metadata: flatten(info.metadata as Record<string, unknown>)
    };
    if (options.llama != null) {
        const onGpu = options.llama.gpu !== false;
        const contextSize = options.contextSize ?? Math.min(summary.contextLength ?? 2048, 2048);
        const estimate = await estimateMemory(options.llama, info, {contextSize, sequences: options.sequences, onGpu});
        const decision = decideMemoryFit({...estimate, contextSize, sequences: options.sequences, policy: "shrink", modelName: summary.file});
        inspection.memory = {
            contextSize, sequences: options.sequences, onGpu,
            modelBytes: decision.modelBytes, contextBytes: estimate.contextBytes(contextSize), freeBytes: estimate.freeBytes, memoryName: estimate.memoryName,
            decision: decision.action,
            fittingContextSize: decision.action === "refuse" ? undefined : decision.contextSize,
            message: decision.action === "fit" ? undefined : decision.message
        };
    }
    return inspection;
}

function numberOr(value: unknown): number | undefined {
    const number = Number(value);
    return Number.isFinite(number) && value != null ? number : undefined;
}

/** `{general: {name: "x"}}` → `{"general.name": "x"}`; long arrays become a count. */
function flatten(object: Record<string, unknown>, prefix = "", out: Record<string, unknown> = {}): Record<string, unknown> {
    for (const [key, value] of Object.entries(object)) {
        const name = prefix + key;
        if (Array.isArray(value)) out[name] = value.length > 16 ? `[${value.length} items]` : value;
        else if (value != null && typeof value === "object") flatten(value as Record<string, unknown>, `${name}.`, out);
        else if (typeof value === "string" && value.length > 200) out[name] = `${value.slice(0, 200)}… (${value.length} characters)`;
        else out[name] = typeof value === "bigint" ? Number(value) : value;
    }
    return out;
}
