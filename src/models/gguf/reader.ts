import {open, type FileHandle} from "node:fs/promises";
import {scalarSizes} from "./metadata.js";
import {decodeTensorData, encodedSize} from "./quantize.js";
import {
    alignTo, elementCount, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufValueType, isSupportedTensorType,
    type GgufMetadataEntry, type GgufMetadataValue, type GgufScalar, type GgufScalarType, type GgufTensorType
} from "./types.js";

export interface GgufTensorEntry {
    name: string;
    /** ggml order: dims[0] is the row length. */
    dims: number[];
    /** A ggml type id (`GgmlType`); only F32, F16, Q8_0 and Q4_0 can be read as values. */
    type: number;
    /** Offset from the start of the data section, as stored. */
    offset: number;
    /** Offset from the start of the file. */
    fileOffset: number;
}

/**
 * Reads a GGUF file's metadata with each value's stored type (node-llama-cpp's `readGgufFileInfo`
 * gives values without types, so a copy could not keep an int32 array an int32 array) and its
 * tensors' data, dequantized to float32 or streamed row by row.
 */
export class GgufReader {
    private constructor(
        private readonly handle: FileHandle,
        readonly path: string,
        readonly version: number,
        readonly metadata: readonly GgufMetadataEntry[],
        readonly tensors: readonly GgufTensorEntry[],
        readonly alignment: number,
        /** Where the tensor data starts in the file. */
        readonly dataOffset: number
    ) {}

    static async open(path: string): Promise<GgufReader> {
        const handle = await open(path, "r");
        try {
            const fileSize = (await handle.stat()).size;
            for (let length = Math.min(fileSize, 1 << 20); ; length = Math.min(fileSize, length * 4)) {
                const prefix = Buffer.alloc(length);
                await handle.read(prefix, 0, length, 0);
                const parsed = parseHeader(prefix, length === fileSize);
                if (parsed != null) return new GgufReader(handle, path, ...parsed);
            }
        } catch (error) {
            await handle.close();
            throw error;
        }
    }

    get(key: string): GgufMetadataValue | undefined {
        return this.metadata.find((entry) => entry.key === key)?.value;
    }

    tensor(name: string): GgufTensorEntry {
        const tensor = this.tensors.find((entry) => entry.name === name);
        if (tensor == null) throw new Error(`no tensor ${name} in ${this.path}`);
        return tensor;
    }

    /** The tensor's stored bytes. */
    async readBytes(tensor: GgufTensorEntry | string, start = 0, length?: number): Promise<Uint8Array> {
        const entry = typeof tensor === "string" ? this.tensor(tensor) : tensor;
        const bytes = new Uint8Array(length ?? encodedSize(supportedType(entry), elementCount(entry.dims)) - start);
        const {bytesRead} = await this.handle.read(bytes, 0, bytes.length, entry.fileOffset + start);
        if (bytesRead !== bytes.length) throw new Error(`tensor ${entry.name}: file ends inside its data`);
        return bytes;
    }

    /** The whole tensor as float32 values (dequantized). */
    async readTensor(tensor: GgufTensorEntry | string): Promise<Float32Array> {
        const entry = typeof tensor === "string" ? this.tensor(tensor) : tensor;
        const values = new Float32Array(elementCount(entry.dims));
        decodeTensorData(supportedType(entry), await this.readBytes(entry), values);
        return values;
    }

    /** The tensor as float32 chunks of `rowsPerChunk` rows (dims[0] values each): a `TensorDataProvider`. */
    async *readRows(tensor: GgufTensorEntry | string, rowsPerChunk?: number): AsyncGenerator<Float32Array> {
        const entry = typeof tensor === "string" ? this.tensor(tensor) : tensor;
        const type = supportedType(entry);
        const rowLength = entry.dims[0] ?? 1;
        const rows = elementCount(entry.dims) / rowLength;
        const rowBytes = encodedSize(type, rowLength);
        const chunkRows = rowsPerChunk ?? Math.max(1, Math.floor((1 << 20) / Math.max(1, rowBytes)));
        for (let row = 0; row < rows; row += chunkRows) {
            const count = Math.min(chunkRows, rows - row);
            const values = new Float32Array(count * rowLength);
            decodeTensorData(type, await this.readBytes(entry, row * rowBytes, count * rowBytes), values);
            yield values;
        }
    }

    async close(): Promise<void> {
        await this.handle.close();
    }
}

function supportedType(tensor: GgufTensorEntry): GgufTensorType {
    if (!isSupportedTensorType(tensor.type)) throw new Error(`tensor ${tensor.name}: ggml type ${tensor.type} cannot be read as values`);
    return tensor.type;
}

class NeedMoreBytes extends Error {}

type ParsedHeader = [version: number, metadata: GgufMetadataEntry[], tensors: GgufTensorEntry[], alignment: number, dataOffset: number];

/** Parses the header from a file prefix; null when the prefix is too short (read more and retry). */
function parseHeader(buffer: Buffer, wholeFile: boolean): ParsedHeader | null {
    let at = 0;
    const take = (bytes: number) => {
        if (at + bytes > buffer.length) throw wholeFile ? new Error("GGUF file ends inside its header") : new NeedMoreBytes();
        const start = at;
        at += bytes;
        return start;
    };
    const u32 = () => buffer.readUInt32LE(take(4));
    const u64 = () => buffer.readBigUInt64LE(take(8));
    const count = () => {
        const value = u64();
        if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`GGUF count too large: ${value}`);
        return Number(value);
    };
    const string = () => {
        const length = count();
        return buffer.toString("utf8", take(length), at);
    };
    const scalar = (type: GgufScalarType): GgufScalar => {
        if (type === GgufValueType.String) return string();
        const size = scalarSizes[type];
        if (size == null) throw new Error(`unknown GGUF value type ${type}`);
        const offset = take(size);
        switch (type) {
            case GgufValueType.Uint8: return buffer.readUInt8(offset);
            case GgufValueType.Int8: return buffer.readInt8(offset);
            case GgufValueType.Uint16: return buffer.readUInt16LE(offset);
            case GgufValueType.Int16: return buffer.readInt16LE(offset);
            case GgufValueType.Uint32: return buffer.readUInt32LE(offset);
            case GgufValueType.Int32: return buffer.readInt32LE(offset);
            case GgufValueType.Float32: return buffer.readFloatLE(offset);
            case GgufValueType.Bool: return buffer.readUInt8(offset) !== 0;
            case GgufValueType.Uint64: return buffer.readBigUInt64LE(offset);
            case GgufValueType.Int64: return buffer.readBigInt64LE(offset);
            case GgufValueType.Float64: return buffer.readDoubleLE(offset);
        }
    };

    try {
        if (buffer.toString("latin1", take(4), at) !== GGUF_MAGIC) throw new Error("not a GGUF file (bad magic)");
        const version = u32();
        if (version !== 2 && version !== 3) throw new Error(`unsupported GGUF version ${version}`);
        const tensorCount = count();
        const entryCount = count();
        const metadata: GgufMetadataEntry[] = [];
        for (let index = 0; index < entryCount; index++) {
            const key = string();
            const type = u32() as GgufValueType;
            if (type !== GgufValueType.Array) {
                metadata.push({key, type, value: scalar(type)});
                continue;
            }
            const itemType = u32() as GgufScalarType;
            if ((itemType as number) === GgufValueType.Array) throw new Error(`GGUF key ${key}: nested arrays are not supported`);
            const length = count();
            const items: GgufScalar[] = new Array(length);
            for (let item = 0; item < length; item++) items[item] = scalar(itemType);
            metadata.push({key, type, value: items, itemType});
        }
        const alignmentEntry = metadata.find((entry) => entry.key === "general.alignment");
        const alignment = alignmentEntry == null ? GGUF_DEFAULT_ALIGNMENT : Number(alignmentEntry.value);
        const tensors: GgufTensorEntry[] = [];
        for (let index = 0; index < tensorCount; index++) {
            const name = string();
            const dims = Array.from({length: u32()}, count);
            const type = u32();
            tensors.push({name, dims, type, offset: count(), fileOffset: 0});
        }
        const dataOffset = alignTo(at, alignment);
        for (const tensor of tensors) tensor.fileOffset = dataOffset + tensor.offset;
        return [version, metadata, tensors, alignment, dataOffset];
    } catch (error) {
        if (error instanceof NeedMoreBytes) return null;
        throw error;
    }
}
