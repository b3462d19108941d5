import {GgufValueType, type GgufMetadataEntry, type GgufMetadataValue, type GgufScalar, type GgufScalarType} from "./types.js";

/** Integer ranges of the fixed-size integer types. */
const integerRanges: Partial<Record<GgufScalarType, [bigint, bigint]>> = {
    [GgufValueType.Uint8]: [0n, 0xffn],
    [GgufValueType.Int8]: [-0x80n, 0x7fn],
    [GgufValueType.Uint16]: [0n, 0xffffn],
    [GgufValueType.Int16]: [-0x8000n, 0x7fffn],
    [GgufValueType.Uint32]: [0n, 0xffffffffn],
    [GgufValueType.Int32]: [-0x80000000n, 0x7fffffffn],
    [GgufValueType.Uint64]: [0n, 0xffffffffffffffffn],
    [GgufValueType.Int64]: [-0x8000000000000000n, 0x7fffffffffffffffn]
};

/**
 * The type a value gets when none is given: strings, bools; integers as uint32 (int32 when
 * negative, 64-bit when larger or a bigint), other numbers as float32. Arrays of integers become
 * int32 arrays (llama.cpp's token types), of other numbers float32 (token scores).
 */
export function inferMetadataType(value: GgufMetadataValue): {type: GgufValueType; itemType?: GgufScalarType} {
    if (!Array.isArray(value)) return {type: inferScalarType(value as GgufScalar)};
    const items = value as readonly GgufScalar[];
    if (items.length === 0) throw new Error("the item type of an empty array must be given");
    const first = typeof items[0];
    if (items.some((item) => typeof item !== first)) throw new Error("array items must all have one type");
    if (first === "string") return {type: GgufValueType.Array, itemType: GgufValueType.String};
    if (first === "boolean") return {type: GgufValueType.Array, itemType: GgufValueType.Bool};
    if (first === "bigint") return {type: GgufValueType.Array, itemType: items.some((item) => (item as bigint) < 0n) ? GgufValueType.Int64 : GgufValueType.Uint64};
    const allInt32 = items.every((item) => Number.isInteger(item) && (item as number) >= -0x80000000 && (item as number) <= 0x7fffffff);
    return {type: GgufValueType.Array, itemType: allInt32 ? GgufValueType.Int32 : GgufValueType.Float32};
}

function inferScalarType(value: GgufScalar): GgufScalarType {
    switch (typeof value) {
        case "string": return GgufValueType.String;
        case "boolean": return GgufValueType.Bool;
        case "bigint": return value < 0n ? GgufValueType.Int64 : GgufValueType.Uint64;
        default:
            if (!Number.isInteger(value)) return GgufValueType.Float32;
            if (value >= 0) return value <= 0xffffffff ? GgufValueType.Uint32 : GgufValueType.Uint64;
            return value >= -0x80000000 ? GgufValueType.Int32 : GgufValueType.Int64;
    }
}

/** Throws unless `entry.value` can be stored as `entry.type` (ranges checked, no nested arrays). */
export function validateMetadataEntry(entry: GgufMetadataEntry): void {
    const fail = (why: string): never => {
        throw new Error(`GGUF metadata "${entry.key}": ${why}`);
    };
    if (entry.key.length === 0) fail("empty key");
    if (entry.type === GgufValueType.Array) {
        if (!Array.isArray(entry.value)) fail("an array type needs an array value");
        if (entry.itemType == null || entry.itemType === (GgufValueType.Array as number)) fail("arrays need a scalar item type (no nested arrays)");
        for (const item of entry.value as readonly GgufScalar[]) checkScalar(item, entry.itemType!, fail);
    } else {
        if (Array.isArray(entry.value)) fail("an array value needs the Array type");
        checkScalar(entry.value as GgufScalar, entry.type, fail);
    }
}

function checkScalar(value: GgufScalar, type: GgufScalarType, fail: (why: string) => never) {
    if (type === GgufValueType.String) {
        if (typeof value !== "string") fail(`expected a string, got ${typeof value}`);
        return;
    }
    if (type === GgufValueType.Bool) {
        if (typeof value !== "boolean") fail(`expected a boolean, got ${typeof value}`);
        return;
    }
    if (typeof value !== "number" && typeof value !== "bigint") fail(`expected a number, got ${typeof value}`);
    const range = integerRanges[type];
    if (range == null) {
        if (typeof value === "bigint") fail("a float type needs a number");
        return;
    }
    if (typeof value === "number" && !Number.isSafeInteger(value)) fail(`${value} is not a safe integer`);
    const big = BigInt(value);
    if (big < range[0] || big > range[1]) fail(`${value} is out of range for type ${type}`);
}

/** Little-endian bytes appended to a growing buffer: the header, metadata and tensor infos. */
export class ByteBuilder {
    private buffer = Buffer.alloc(64 * 1024);
    length = 0;

    private reserve(bytes: number): number {
        if (this.length + bytes > this.buffer.length) {
            const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + bytes));
            this.buffer.copy(grown, 0, 0, this.length);
            this.buffer = grown;
        }
        const at = this.length;
        this.length += bytes;
        return at;
    }

    u32(value: number) {
        const at = this.reserve(4);
        this.buffer.writeUInt32LE(value, at);
    }

    u64(value: number | bigint) {
        const at = this.reserve(8);
        this.buffer.writeBigUInt64LE(BigInt(value), at);
    }

    string(value: string) {
        const bytes = Buffer.from(value, "utf8");
        this.u64(bytes.length);
        const at = this.reserve(bytes.length);
        bytes.copy(this.buffer, at);
    }

    zeros(count: number) {
        const at = this.reserve(count);
        this.buffer.fill(0, at, this.length);
    }

    scalar(type: GgufScalarType, value: GgufScalar) {
        if (type === GgufValueType.String) return this.string(value as string);
        const at = this.reserve(scalarSizes[type]);
        const b = this.buffer;
        switch (type) {
            case GgufValueType.Uint8: b.writeUInt8(Number(value), at); break;
            case GgufValueType.Int8: b.writeInt8(Number(value), at); break;
            case GgufValueType.Uint16: b.writeUInt16LE(Number(value), at); break;
            case GgufValueType.Int16: b.writeInt16LE(Number(value), at); break;
            case GgufValueType.Uint32: b.writeUInt32LE(Number(value), at); break;
            case GgufValueType.Int32: b.writeInt32LE(Number(value), at); break;
            case GgufValueType.Float32: b.writeFloatLE(Number(value), at); break;
            case GgufValueType.Bool: b.writeUInt8(value === true ? 1 : 0, at); break;
            case GgufValueType.Uint64: b.writeBigUInt64LE(BigInt(value), at); break;
            case GgufValueType.Int64: b.writeBigInt64LE(BigInt(value), at); break;
            case GgufValueType.Float64: b.writeDoubleLE(Number(value), at); break;
        }
    }

    entry(entry: GgufMetadataEntry) {
        this.string(entry.key);
        this.u32(entry.type);
        if (entry.type !== GgufValueType.Array) {
            this.scalar(entry.type, entry.value as GgufScalar);
            return;
        }
        const items = entry.value as readonly GgufScalar[];
        this.u32(entry.itemType!);
        this.u64(items.length);
        for (const item of items) this.scalar(entry.itemType!, item);
    }

    bytes(): Buffer {
        return this.buffer.subarray(0, this.length);
    }
}

/** Bytes of each fixed-size scalar type. */
export const scalarSizes: Record<Exclude<GgufScalarType, typeof GgufValueType.String>, number> = {
    [GgufValueType.Uint8]: 1, [GgufValueType.Int8]: 1, [GgufValueType.Uint16]: 2, [GgufValueType.Int16]: 2,
    [GgufValueType.Uint32]: 4, [GgufValueType.Int32]: 4, [GgufValueType.Float32]: 4, [GgufValueType.Bool]: 1,
    [GgufValueType.Uint64]: 8, [GgufValueType.Int64]: 8, [GgufValueType.Float64]: 8
};
