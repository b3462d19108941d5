import {describe, expect, it} from "vitest";
import {f16ToF32, f32ToF16} from "./f16.js";
import {dequantizeQ4_0, dequantizeQ8_0, quantizeQ4_0, quantizeQ8_0} from "./quantize.js";

/** Deterministic values in [-scale, scale). */
function randomValues(count: number, seed: number, scale = 1): Float32Array {
    let state = seed >>> 0;
    return Float32Array.from({length: count}, () => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return (state / 2 ** 32 * 2 - 1) * scale;
    });
}

describe("f16", () => {
    it("round-trips every half value", () => {
        const wrong: number[] = [];
        for (let half = 0; half < 0x10000; half++) {
            const value = f16ToF32(half);
            const back = f32ToF16(value);
            if (Number.isNaN(value) ? (back & 0x7fff) <= 0x7c00 : back !== half) wrong.push(half);
        }
        expect(wrong).toEqual([]);
    });

    it("rounds to nearest, ties to even, with overflow and subnormals", () => {
        expect(f32ToF16(1)).toBe(0x3c00);
        expect(f32ToF16(-0)).toBe(0x8000);
        expect(f32ToF16(65504)).toBe(0x7bff);
        expect(f32ToF16(65520)).toBe(0x7c00);
        expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00);
        expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
        expect(f32ToF16(2 ** -24)).toBe(1);
        expect(f32ToF16(2 ** -25)).toBe(0);
        expect(f32ToF16(3 * 2 ** -25)).toBe(2);
        expect(f32ToF16(Number.NaN) & 0x7fff).toBeGreaterThan(0x7c00);
        const notNearest = [...randomValues(20_000, 7, 65_000)].filter((value) => {
            const half = f32ToF16(value);
            const error = Math.abs(f16ToF32(half) - value);
            return error > Math.abs(f16ToF32(half + 1) - value) || error > Math.abs(f16ToF32(half - 1) - value);
        });
        expect(notNearest).toEqual([]);
    });
});

describe("Q8_0", () => {
    it("stores an f16 scale amax/127 and codes rounded half away from zero", () => {
        const block = new Float32Array(32);
        block.set([127, -127, 0.5, -0.5, 1.5, -2.5, 0.49]);
        const bytes = new Uint8Array(34);
        quantizeQ8_0(block, bytes);
        expect(bytes[0]! | (bytes[1]! << 8)).toBe(0x3c00);
        expect([...new Int8Array(bytes.buffer, 2, 7)]).toEqual([127, -127, 1, -1, 2, -3, 0]);
        const zero = new Uint8Array(34).fill(1);
        quantizeQ8_0(new Float32Array(32), zero);
        expect([...zero]).toEqual(new Array(34).fill(0));
    });

    it("dequantizes within half a step (plus the scale's f16 rounding)", () => {
        const values = randomValues(32 * 64, 1, 3);
        const bytes = new Uint8Array(34 * 64);
        quantizeQ8_0(values, bytes);
        const restored = new Float32Array(values.length);
        dequantizeQ8_0(bytes, restored);
        for (let block = 0; block < 64; block++) {
            const slice = values.subarray(block * 32, block * 32 + 32);
            const step = Math.max(...slice.map(Math.abs)) / 127;
            for (let j = 0; j < 32; j++) expect(Math.abs(restored[block * 32 + j]! - slice[j]!)).toBeLessThanOrEqual(step * 0.57);
        }
    });
});

describe("Q4_0", () => {
    it("maps the value of largest magnitude to code 0 (-8) and packs element j with j+16", () => {
        const block = new Float32Array(32);
        block.set([-8, 7, 7.9, 0, -0.5, 0.49, 0.5, 3]);
        block[16] = 1;
        block[17] = -3;
        const bytes = new Uint8Array(18);
        quantizeQ4_0(block, bytes);
        expect(bytes[0]! | (bytes[1]! << 8)).toBe(0x3c00);
        const low = [...bytes.subarray(2)].map((byte) => byte & 0x0f);
        const high = [...bytes.subarray(2)].map((byte) => byte >> 4);
        expect(low.slice(0, 8)).toEqual([0, 15, 15, 8, 8, 8, 9, 11]);
        expect(high.slice(0, 3)).toEqual([9, 5, 8]);
        const restored = new Float32Array(32);
        dequantizeQ4_0(bytes, restored);
        expect([...restored.subarray(0, 8)]).toEqual([-8, 7, 7, 0, 0, 0, 1, 3]);
    });

    it("dequantizes within a step of the block's scale", () => {
        const values = randomValues(32 * 64, 2, 0.1);
        const bytes = new Uint8Array(18 * 64);
        quantizeQ4_0(values, bytes);
        const restored = new Float32Array(values.length);
        dequantizeQ4_0(bytes, restored);
        for (let block = 0; block < 64; block++) {
            const slice = values.subarray(block * 32, block * 32 + 32);
            const step = Math.max(...slice.map(Math.abs)) / 8;
            for (let j = 0; j < 32; j++) {
                const error = Math.abs(restored[block * 32 + j]! - slice[j]!);
                // Half a step, except the top end clipped from +8 to +7.
                expect(error).toBeLessThanOrEqual(Math.abs(slice[j]!) > step * 7.5 ? step * 1.01 : step * 0.51);
            }
        }
    });
});
