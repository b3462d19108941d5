/** IEEE half precision <-> single precision, bit-exact with ggml's FP32_TO_FP16 (round to nearest even). */

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

export function f32ToF16(value: number): number {
    f32[0] = value;
    const bits = f32Bits[0]!;
    const sign = (bits >>> 16) & 0x8000;
    const exponent = (bits >>> 23) & 0xff;
    let mantissa = bits & 0x7fffff;
    if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
    const halfExponent = exponent - 127 + 15;
    if (halfExponent >= 0x1f) return sign | 0x7c00;
    if (halfExponent <= 0) {
        // Subnormal half (or zero): shift the mantissa, implicit bit included, into place.
        if (halfExponent < -10) return sign;
        mantissa |= 0x800000;
        const shift = 14 - halfExponent;
        let half = mantissa >>> shift;
        const rest = mantissa & ((1 << shift) - 1);
        const halfway = 1 << (shift - 1);
        if (rest > halfway || (rest === halfway && (half & 1) !== 0)) half++;
        return sign | half;
    }
    // A carry out of the mantissa bumps the exponent, up to infinity: still the right answer.
    let half = (halfExponent << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) !== 0)) half++;
    return sign | half;
}

function decodeF16(half: number): number {
    const sign = (half & 0x8000) !== 0 ? -1 : 1;
    const exponent = (half >>> 10) & 0x1f;
    const mantissa = half & 0x3ff;
    if (exponent === 0) return sign * mantissa * 2 ** -24;
    if (exponent === 0x1f) return mantissa !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Every half value decoded once, as ggml does (`ggml_table_f32_f16`). */
const f16Table = Float32Array.from({length: 65536}, (_, half) => decodeF16(half));

export function f16ToF32(half: number): number {
    return f16Table[half & 0xffff]!;
}

/** Converts `source` into little-endian halves written at `target[offset…]`. */
export function encodeF16(source: Float32Array, target: Uint8Array, offset = 0): void {
    for (let index = 0; index < source.length; index++) {
        const half = f32ToF16(source[index]!);
        target[offset + 2 * index] = half & 0xff;
        target[offset + 2 * index + 1] = half >>> 8;
    }
}

export function decodeF16Bytes(source: Uint8Array, target: Float32Array): void {
    for (let index = 0; index < target.length; index++)
        target[index] = f16Table[source[2 * index]! | (source[2 * index + 1]! << 8)]!;
}
