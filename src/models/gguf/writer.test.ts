import {existsSync} from "node:fs";
import {mkdtemp, readFile, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {getLlama, readGgufFileInfo, type Llama, type Token} from "node-llama-cpp";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {isStories260K, testModelPath} from "../../../test/helpers/model.js";
import {f16ToF32, f32ToF16} from "./f16.js";
import {GgufReader} from "./reader.js";
import {GgmlType, GgufValueType, type GgufTensorType} from "./types.js";
import {GgufWriter} from "./writer.js";

let dir: string;
beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "gguf-writer-"));
});
afterAll(async () => {
    await rm(dir, {recursive: true, force: true});
});

function values(count: number, seed: number): Float32Array {
    let state = seed;
    return Float32Array.from({length: count}, () => {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        return state / 2 ** 32 - 0.5;
    });
}

const maxAbs = (array: Float32Array) => array.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
const maxError = (a: Float32Array, b: Float32Array) => a.reduce((max, value, index) => Math.max(max, Math.abs(value - b[index]!)), 0);

describe("GgufWriter", () => {
    it("writes metadata of every value type and tensors of every type, read back by readGgufFileInfo and GgufReader", async () => {
        const file = path.join(dir, "all-types.gguf");
        const tensors = {
            f32: {dims: [40, 3], type: GgmlType.F32, data: values(120, 1)},
            f16: {dims: [24, 2, 2], type: GgmlType.F16, data: values(96, 2)},
            q8: {dims: [64, 5], type: GgmlType.Q8_0, data: values(320, 3)},
            q4: {dims: [96, 3], type: GgmlType.Q4_0, data: values(288, 4)}
        } satisfies Record<string, {dims: number[]; type: GgufTensorType; data: Float32Array}>;
        const writer = new GgufWriter(file)
            .addMetadata("general.architecture", "llama")
            .addMetadata("t.u8", 255, GgufValueType.Uint8)
            .addMetadata("t.i8", -128, GgufValueType.Int8)
            .addMetadata("t.u16", 65535, GgufValueType.Uint16)
            .addMetadata("t.i16", -32768, GgufValueType.Int16)
            .addMetadata("t.u32", 4294967295)
            .addMetadata("t.i32", -2147483648)
            .addMetadata("t.f32", 0.25)
            .addMetadata("t.bool", true)
            .addMetadata("t.string", "héllo ✓")
            .addMetadata("t.u64", 2n ** 64n - 1n)
            .addMetadata("t.i64", -(2n ** 63n))
            .addMetadata("t.f64", Math.PI, GgufValueType.Float64)
            .addMetadata("t.strings", ["<unk>", "", "▁the"])
            .addMetadata("t.ints", [1, -2, 3])
            .addMetadata("t.floats", [0.5, -1.5])
            .addMetadata("t.bytes", [1, 2, 3], GgufValueType.Array, GgufValueType.Uint8)
            .addMetadata("t.empty", [], GgufValueType.Array, GgufValueType.Float32);
        writer.addTensor("f32", tensors.f32.dims, tensors.f32.type, tensors.f32.data);
        writer.addTensor("f16", tensors.f16.dims, tensors.f16.type, () => [tensors.f16.data.subarray(0, 50), tensors.f16.data.subarray(50)]);
        // Chunks that end mid-block: the writer carries the rest over.
        writer.addTensor("q8", tensors.q8.dims, tensors.q8.type, function* () {
            for (let start = 0; start < 320; start += 7) yield tensors.q8.data.subarray(start, start + 7);
        });
        writer.addTensor("q4", tensors.q4.dims, tensors.q4.type, async function* () {
            for (let row = 0; row < 3; row++) yield tensors.q4.data.subarray(row * 96, row * 96 + 96);
        });
        await writer.write();

        const info = await readGgufFileInfo(file, {logWarnings: false});
        expect(info.version).toBe(3);
        expect((info.metadata as unknown as {t: unknown}).t).toEqual({
            u8: 255, i8: -128, u16: 65535, i16: -32768, u32: 4294967295, i32: -2147483648, f32: 0.25, bool: true,
            string: "héllo ✓", u64: 2n ** 64n - 1n, i64: -(2n ** 63n), f64: Math.PI,
            strings: ["<unk>", "", "▁the"], ints: [1, -2, 3], floats: [0.5, -1.5], bytes: [1, 2, 3], empty: []
        });
        expect(info.tensorInfo!.map(({name, dimensions, ggmlType}) => ({name, dimensions, ggmlType})))
            .toEqual(Object.entries(tensors).map(([name, tensor]) => ({name, dimensions: tensor.dims, ggmlType: tensor.type})));

        const reader = await GgufReader.open(file);
        try {
            expect(reader.metadata.find((entry) => entry.key === "t.ints")).toMatchObject({type: GgufValueType.Array, itemType: GgufValueType.Int32});
            expect(reader.metadata.find((entry) => entry.key === "t.u32")?.type).toBe(GgufValueType.Uint32);
            for (const [index, tensor] of reader.tensors.entries()) {
                expect(tensor.fileOffset).toBe(Number(info.tensorInfo![index]!.fileOffset));
                expect(tensor.fileOffset % 32).toBe(0);
            }
            expect(await reader.readTensor("f32")).toEqual(tensors.f32.data);
            expect(await reader.readTensor("f16")).toEqual(tensors.f16.data.map((value) => f16ToF32(f32ToF16(value))));
            const q8 = await reader.readTensor("q8");
            const q4 = await reader.readTensor("q4");
            // Q8_0: half a step of amax/127 (+ the f16 scale's rounding); Q4_0: a step of amax/8 at worst (clipped top).
            expect(maxError(q8, tensors.q8.data)).toBeLessThan(maxAbs(tensors.q8.data) / 127 * 0.57);
            expect(maxError(q4, tensors.q4.data)).toBeLessThan(maxAbs(tensors.q4.data) / 8 * 1.01);
            const rows: Float32Array[] = [];
            for await (const chunk of reader.readRows("q4", 2)) rows.push(chunk);
            expect(rows.map((chunk) => chunk.length)).toEqual([192, 96]);
            expect(Float32Array.from(rows.flatMap((chunk) => [...chunk]))).toEqual(q4);
        } finally {
            await reader.close();
        }
    });

    it("aligns tensor data to a custom alignment stored as general.alignment", async () => {
        const file = path.join(dir, "aligned.gguf");
        await new GgufWriter(file, {alignment: 256})
            .addTensor("a", [3], GgmlType.F32, values(3, 5))
            .addTensor("b", [32], GgmlType.Q8_0, values(32, 6))
            .write();
        const info = await readGgufFileInfo(file, {logWarnings: false});
        expect(info.metadata.general.alignment).toBe(256);
        expect(info.tensorInfo!.map((tensor) => [tensor.offset, Number(tensor.fileOffset) % 256])).toEqual([[0, 0], [256, 0]]);
    });

    it("rejects wrong value counts and rows that do not split into blocks, leaving no file", async () => {
        const file = path.join(dir, "bad.gguf");
        expect(() => new GgufWriter(file).addTensor("q", [48, 2], GgmlType.Q4_0, values(96, 1))).toThrow(/multiple of 32/);
        await expect(new GgufWriter(file).addTensor("t", [4, 2], GgmlType.F32, values(7, 1)).write()).rejects.toThrow(/got 7 values/);
        expect(existsSync(file) || existsSync(`${file}.partial`)).toBe(false);
        expect(() => new GgufWriter(file).addMetadata("x", 300, GgufValueType.Uint8)).toThrow(/out of range/);
    });

    it.skipIf(!isStories260K)("copies stories260K byte for byte through GgufReader and GgufWriter", async () => {
        const copy = await copyModel(path.join(dir, "copy.gguf"), () => GgmlType.F32);
        expect((await readFile(copy)).equals(await readFile(testModelPath))).toBe(true);
    });
});

/** stories260K through the reader and writer, each 2-D tensor stored as `typeOf(dims)` chooses. */
async function copyModel(file: string, typeOf: (dims: number[]) => GgufTensorType): Promise<string> {
    const reader = await GgufReader.open(testModelPath);
    try {
        const writer = new GgufWriter(file);
        for (const entry of reader.metadata) writer.addMetadataEntry(entry);
        for (const tensor of reader.tensors)
            writer.addTensor(tensor.name, tensor.dims, tensor.dims.length < 2 ? GgmlType.F32 : typeOf(tensor.dims), () => reader.readRows(tensor));
        await writer.write();
        return file;
    } finally {
        await reader.close();
    }
}

describe("llama.cpp loads what the writer writes", () => {
    let llama: Llama;
    beforeAll(async () => {
        llama = await getLlama({gpu: false, build: "never", logLevel: "error" as never});
    });
    afterAll(async () => {
        await llama?.dispose();
    });

    async function greedy(modelPath: string, count = 32): Promise<number[]> {
        const model = await llama.loadModel({modelPath});
        const context = await model.createContext({contextSize: 256, threads: {ideal: 1, min: 1}, flashAttention: false});
        try {
            const prompt = [model.tokens.bos!, ...model.tokenize("Once upon a time")] as Token[];
            const tokens: number[] = [];
            for await (const token of context.getSequence().evaluate(prompt, {temperature: 0})) {
                tokens.push(token);
                if (tokens.length >= count) break;
            }
            return tokens;
        } finally {
            await context.dispose();
            await model.dispose();
        }
    }

    const agreeingPrefix = (a: number[], b: number[]) => {
        let index = 0;
        while (index < a.length && a[index] === b[index]) index++;
        return index;
    };

    it.skipIf(!isStories260K)("decodes the same 32 greedy tokens from the copy as from stories260K, and close ones from F16/Q8_0/Q4_0 versions", async () => {
        const original = await greedy(testModelPath);
        expect(original).toHaveLength(32);
        expect(await greedy(await copyModel(path.join(dir, "copy-f32.gguf"), () => GgmlType.F32))).toEqual(original);
        // ffn_down's rows (172 values) do not split into blocks of 32: F16 there.
        const quantized = (type: GgufTensorType) => (dims: number[]) => dims[0]! % 32 === 0 ? type : GgmlType.F16;
        expect(await greedy(await copyModel(path.join(dir, "f16.gguf"), () => GgmlType.F16))).toEqual(original);
        expect(await greedy(await copyModel(path.join(dir, "q8_0.gguf"), quantized(GgmlType.Q8_0)))).toEqual(original);
        // 4 bits per weight on a 260K-parameter model drifts, but a wrong block layout would give garbage at once.
        const q4 = await greedy(await copyModel(path.join(dir, "q4_0.gguf"), quantized(GgmlType.Q4_0)));
        expect(agreeingPrefix(q4, original)).toBeGreaterThanOrEqual(12);
    });
});
