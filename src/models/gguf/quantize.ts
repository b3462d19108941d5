/**
 * Q8_0 and Q4_0 blocks of 32 values, the semantics of llama.cpp's `quantize_row_q8_0_ref`,
 * `quantize_row_q4_0_ref` and their `dequantize_row_*`: float32 arithmetic (Math.fround) so the
 * codes come out as the C reference computes them.
 *   Q8_0: f16 scale d = amax / 127, then 32 int8 codes round(x / d).
 *   Q4_0: f16 scale d = max / -8 (max: the value of largest magnitude, sign kept), then 16 bytes:
 *         byte j holds element j in its low nibble and element j + 16 in its high nibble, code + 8.
 */
import {decodeF16Bytes, encodeF16, f16ToF32, f32ToF16} from "./f16.js";
import {GgmlType, tensorTypeLayout, type GgufTensorType} from "./types.js";

export const QK = 32;
const fround = Math.fround;

/** C's roundf: halves away from zero (Math.round sends -2.5 to -2). */
function roundHalfAway(value: number): number {
    return value < 0 ? -Math.round(-value) : Math.round(value);
}

function writeScale(target: Uint8Array, offset: number, scale: number) {
    const half = f32ToF16(scale);
    target[offset] = half & 0xff;
    target[offset + 1] = half >>> 8;
}

function readScale(source: Uint8Array, offset: number): number {
    return f16ToF32(source[offset]! | (source[offset + 1]! << 8));
}

export function quantizeQ8_0(source: Float32Array, target: Uint8Array, offset = 0): void {
    for (let block = 0; block < source.length / QK; block++) {
        const start = block * QK;
        let amax = 0;
        for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(source[start + j]!));
        const d = fround(amax / 127);
        const id = d !== 0 ? fround(1 / d) : 0;
        const out = offset + block * 34;
        writeScale(target, out, d);
        for (let j = 0; j < QK; j++) target[out + 2 + j] = roundHalfAway(fround(source[start + j]! * id)) & 0xff;
    }
}

export function dequantizeQ8_0(source: Uint8Array, target: Float32Array): void {
    for (let block = 0; block < target.length / QK; block++) {
        const at = block * 34;
        const d = readScale(source, at);
        for (let j = 0; j < QK; j++) target[block * QK + j] = ((source[at + 2 + j]! << 24) >> 24) * d;
    }
}

export function quantizeQ4_0(source: Float32Array, target: Uint8Array, offset = 0): void {
    for (let block = 0; block < source.length / QK; block++) {
        const start = block * QK;
        let amax = 0;
        let max = 0;
        for (let j = 0; j < QK; j++) {
            const value = source[start + j]!;
            if (amax < Math.abs(value)) {
                amax = Math.abs(value);
                max = value;
            }
        }
        const d = fround(max / -8);
        const id = d !== 0 ? fround(1 / d) : 0;
        const out = offset + block * 18;
        writeScale(target, out, d);
        for (let j = 0; j < QK / 2; j++) {
            // (int8_t) truncates; both sums are >= 0.5 here, so truncation is a floor.
            const low = Math.min(15, Math.trunc(fround(fround(source[start + j]! * id) + 8.5)));
            const high = Math.min(15, Math.trunc(fround(fround(source[start + QK / 2 + j]! * id) + 8.5)));
            target[out + 2 + j] = low | (high << 4);
        }
    }
}

export function dequantizeQ4_0(source: Uint8Array, target: Float32Array): void {
    for (let block = 0; block < target.length / QK; block++) {
        const at = block * 18;
        const d = readScale(source, at);
        for (let j = 0; j < QK / 2; j++) {
            const byte = source[at + 2 + j]!;
            target[block * QK + j] = ((byte & 0x0f) - 8) * d;
            target[block * QK + QK / 2 + j] = ((byte >>> 4) - 8) * d;
        }
    }
}

/** Encodes `source` (a whole number of blocks) as `type` into `target[offset…]`. */
export function encodeTensorData(type: GgufTensorType, source: Float32Array, target: Uint8Array, offset = 0): void {
    switch (type) {
        case GgmlType.F32:
            target.set(new Uint8Array(source.buffer, source.byteOffset, source.byteLength), offset);
            return;
        case GgmlType.F16: return encodeF16(source, target, offset);
        case GgmlType.Q8_0: return quantizeQ8_0(source, target, offset);
        case GgmlType.Q4_0: return quantizeQ4_0(source, target, offset);
    }
}

/** Decodes `target.length` values of `type` from `source`. */
export function decodeTensorData(type: GgufTensorType, source: Uint8Array, target: Float32Array): void {
    switch (type) {
        case GgmlType.F32: {
            const bytes = new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
            bytes.set(source.subarray(0, bytes.length));
            return;
        }
        case GgmlType.F16: return decodeF16Bytes(source, target);
        case GgmlType.Q8_0: return dequantizeQ8_0(source, target);
        case GgmlType.Q4_0: return dequantizeQ4_0(source, target);
    }
}

/** Bytes that `elements` values of `type` take; `elements` must be whole blocks. */
export function encodedSize(type: GgufTensorType, elements: number): number {
    const {blockElements, blockBytes} = tensorTypeLayout[type];
    return elements / blockElements * blockBytes;
}
