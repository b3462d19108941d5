import type {LlamaContextOptions} from "node-llama-cpp";
import type {KvCacheType} from "../backend.js";

/** Bytes per cached element: q8_0 and q4_0 store blocks of 32 values with one f16 scale. */
const BYTES_PER_ELEMENT: Record<KvCacheType, number> = {f16: 2, q8_0: 34 / 32, q4_0: 18 / 32};
const GGML_TYPE = {f16: "F16", q8_0: "Q8_0", q4_0: "Q4_0"} as const satisfies Record<KvCacheType, string>;
const QUANT_BLOCK = 32;

/** The attention shape that decides the KV cache size, from GGUF metadata. */
export interface KvShape {
    layers: number;
    /** KV heads summed over layers (some architectures vary them per layer). */
    kvHeadsAllLayers: number;
    keyLength: number;
    valueLength: number;
}

export class KvCacheTypeError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "KvCacheTypeError";
    }
}

/** Reads `<arch>.block_count`, `<arch>.attention.head_count(_kv)`, key/value lengths; `undefined` when missing. */
export function readKvShape(metadata: unknown): KvShape | undefined {
    const root = metadata as Record<string, unknown> | undefined;
    const architecture = (root?.general as {architecture?: string} | undefined)?.architecture;
    const arch = architecture == null ? undefined : root?.[architecture] as Record<string, unknown> | undefined;
    const attention = arch?.attention as Record<string, unknown> | undefined;
    const layers = arch?.block_count;
    if (typeof layers !== "number" || attention == null) return undefined;

    const heads = attention.head_count;
    const kvHeads = attention.head_count_kv ?? heads;
    const sum = (value: unknown) => Array.isArray(value) ? value.reduce((total: number, entry) => total + Number(entry), 0) : Number(value) * layers;
    const maxHeads = Array.isArray(heads) ? Math.max(...heads.map(Number)) : Number(heads);
    const headSize = typeof arch?.embedding_length === "number" && maxHeads > 0 ? arch.embedding_length / maxHeads : NaN;
    const keyLength = typeof attention.key_length === "number" ? attention.key_length : headSize;
    const valueLength = typeof attention.value_length === "number" ? attention.value_length : headSize;
    const kvHeadsAllLayers = sum(kvHeads);
    if (![kvHeadsAllLayers, keyLength, valueLength].every((value) => Number.isFinite(value) && value > 0)) return undefined;
    return {layers, kvHeadsAllLayers, keyLength, valueLength};
}

/**
 * Shifting a quantized K cache (re-roping its keys after erasing a range) crashed the process
 * with SIGSEGV on the first shift in node-llama-cpp 3.21.1's CPU build; a quantized V cache with
 * f16 keys shifted fine. So sliding windows are offered on f16 caches only.
 */
export function canShiftKvCache(type: KvCacheType): boolean {
    return type === "f16";
}

/** Keys and values of one token over all layers, in bytes. */
export function kvBytesPerToken(shape: KvShape, type: KvCacheType): number {
    return Math.round(shape.kvHeadsAllLayers * (shape.keyLength + shape.valueLength) * BYTES_PER_ELEMENT[type]);
}

/**
 * Context options for a KV cache type. Quantized types need flash attention (llama.cpp refuses a
 * quantized V cache without it) and heads whose size is a multiple of the 32-value block; the
 * latter is checked here because llama.cpp only says "Failed to create context" (and without flash
 * attention it accepts a quantized K cache of such a model and produces garbage).
 */
export function kvCacheContextOptions(type: KvCacheType, shape: KvShape | undefined): Pick<LlamaContextOptions, "flashAttention" | "experimentalKvCacheKeyType" | "experimentalKvCacheValueType"> {
    if (type === "f16") return {};
    if (shape != null && (shape.keyLength % QUANT_BLOCK !== 0 || shape.valueLength % QUANT_BLOCK !== 0))
        throw new KvCacheTypeError(
            `KV cache type ${type} needs attention heads whose size is a multiple of ${QUANT_BLOCK}; this model's heads have ` +
            `${shape.keyLength} (keys) and ${shape.valueLength} (values) values. Use kvCacheType "f16" (--kv-cache-type f16) for this model.`
        );
    return {flashAttention: true, experimentalKvCacheKeyType: GGML_TYPE[type], experimentalKvCacheValueType: GGML_TYPE[type]};
}
