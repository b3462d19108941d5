import {GgmlType} from "node-llama-cpp";

/** GGUF metadata value type ids, as stored in the file (gguf.h `gguf_type`). */
export const GgufValueType = {
    Uint8: 0,
    Int8: 1,
    Uint16: 2,
    Int16: 3,
    Uint32: 4,
    Int32: 5,
    Float32: 6,
    Bool: 7,
    String: 8,
    Array: 9,
    Uint64: 10,
    Int64: 11,
    Float64: 12
} as const;
export type GgufValueType = typeof GgufValueType[keyof typeof GgufValueType];
export type GgufScalarType = Exclude<GgufValueType, typeof GgufValueType.Array>;

/** 64-bit integers are read as bigint; numbers are accepted when writing them. */
export type GgufScalar = number | bigint | boolean | string;
export type GgufMetadataValue = GgufScalar | readonly GgufScalar[];

/** One metadata key/value with its stored type: what the reader returns and the writer takes. */
export interface GgufMetadataEntry {
    key: string;
    type: GgufValueType;
    value: GgufMetadataValue;
    /** The element type when `type` is Array. */
    itemType?: GgufScalarType;
}

/** The tensor types edge-llm reads and writes. */
export type GgufTensorType = GgmlType.F32 | GgmlType.F16 | GgmlType.Q8_0 | GgmlType.Q4_0;
export {GgmlType};

/** Elements per block and bytes per block of each tensor type (ggml's `type_traits`). */
export const tensorTypeLayout: Record<GgufTensorType, {blockElements: number; blockBytes: number; name: string}> = {
    [GgmlType.F32]: {blockElements: 1, blockBytes: 4, name: "F32"},
    [GgmlType.F16]: {blockElements: 1, blockBytes: 2, name: "F16"},
    [GgmlType.Q8_0]: {blockElements: 32, blockBytes: 34, name: "Q8_0"},
    [GgmlType.Q4_0]: {blockElements: 32, blockBytes: 18, name: "Q4_0"}
};

export function isSupportedTensorType(type: number): type is GgufTensorType {
    return Object.hasOwn(tensorTypeLayout, type);
}

export function elementCount(dims: readonly number[]): number {
    return dims.reduce((product, dim) => product * dim, 1);
}

/** Bytes of a tensor's data; throws when a row does not split into whole blocks. */
export function tensorByteSize(dims: readonly number[], type: GgufTensorType): number {
    const {blockElements, blockBytes, name} = tensorTypeLayout[type];
    if ((dims[0] ?? 1) % blockElements !== 0)
        throw new Error(`${name} needs rows of a multiple of ${blockElements} elements, got ${dims[0]}`);
    return elementCount(dims) / blockElements * blockBytes;
}

export const GGUF_MAGIC = "GGUF";
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

export function alignTo(offset: number, alignment: number): number {
    return Math.ceil(offset / alignment) * alignment;
}
