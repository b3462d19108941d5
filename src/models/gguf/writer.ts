import {open, rename, rm, type FileHandle} from "node:fs/promises";
import {ByteBuilder, inferMetadataType, validateMetadataEntry} from "./metadata.js";
import {encodeTensorData, encodedSize} from "./quantize.js";
import {
    alignTo, elementCount, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgufValueType, tensorByteSize, tensorTypeLayout,
    type GgufMetadataEntry, type GgufMetadataValue, type GgufScalarType, type GgufTensorType
} from "./types.js";

/**
 * A tensor's values in row-major order (ggml's: dims[0] varies fastest), as chunks of any length.
 * A function, so nothing is produced before `write()` asks for it and each chunk can be dropped
 * once encoded: a model far larger than memory streams through.
 */
export type TensorDataProvider = () => Iterable<Float32Array> | AsyncIterable<Float32Array>;

export interface GgufWriterOptions {
    /** Alignment of the tensor data, a power of 2; stored as `general.alignment` when not 32. Default 32. */
    alignment?: number;
    /** Bytes gathered before each write to the file. Default 4 MiB. */
    bufferBytes?: number;
}

const defaultGgufWriterOptions = {alignment: GGUF_DEFAULT_ALIGNMENT, bufferBytes: 4 * 1024 * 1024} satisfies Required<GgufWriterOptions>;

interface PendingTensor {
    name: string;
    dims: readonly number[];
    type: GgufTensorType;
    data: TensorDataProvider;
    byteSize: number;
}

/**
 * Writes a GGUF v3 file: header, metadata, tensor infos, then each tensor's data, every tensor
 * aligned. Metadata and tensors are kept in the order added (llama.cpp requires the data in
 * tensor-info order). The file appears at `path` only once complete.
 *
 *   const writer = new GgufWriter(file);
 *   writer.addMetadata("general.architecture", "llama");
 *   writer.addTensor("output_norm.weight", [64], GgmlType.F32, () => [weights]);
 *   await writer.write();
 */
export class GgufWriter {
    private readonly options: Required<GgufWriterOptions>;
    private readonly metadata = new Map<string, GgufMetadataEntry>();
    private readonly tensors = new Map<string, PendingTensor>();
    private written = false;

    constructor(readonly path: string, options: GgufWriterOptions = {}) {
        this.options = {...defaultGgufWriterOptions, ...options};
        const {alignment} = this.options;
        if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0 || alignment > 0xffffffff)
            throw new Error(`GGUF alignment must be a power of 2, got ${alignment}`);
        if (alignment !== GGUF_DEFAULT_ALIGNMENT) this.addMetadata("general.alignment", alignment, GgufValueType.Uint32);
    }

    /**
     * Sets a metadata value. Without `type` it is inferred (see `inferMetadataType`), or kept from
     * an entry of the same key set before: a key set again keeps its place and takes the new value.
     */
    addMetadata(key: string, value: GgufMetadataValue, type?: GgufValueType, itemType?: GgufScalarType): this {
        const previous = this.metadata.get(key);
        const typed = type != null
            ? {type, itemType}
            : previous != null && Array.isArray(value) === (previous.type === GgufValueType.Array)
                ? {type: previous.type, itemType: previous.itemType}
                : inferMetadataType(value);
        return this.addMetadataEntry({key, value, ...typed});
    }

    /** Adds an entry as the reader returns it, type included: copies keep every type exactly. */
    addMetadataEntry(entry: GgufMetadataEntry): this {
        validateMetadataEntry(entry);
        if (entry.key === "general.alignment" && (entry.type !== GgufValueType.Uint32 || entry.value !== this.options.alignment))
            throw new Error(`general.alignment must be the writer's alignment (${this.options.alignment}) as a uint32`);
        this.metadata.set(entry.key, {...entry});
        return this;
    }

    getMetadata(key: string): GgufMetadataEntry | undefined {
        return this.metadata.get(key);
    }

    /** `dims` as ggml counts them: dims[0] is the row length (a multiple of 32 for Q8_0/Q4_0). */
    addTensor(name: string, dims: readonly number[], type: GgufTensorType, data: TensorDataProvider | Float32Array): this {
        if (this.tensors.has(name)) throw new Error(`duplicate tensor ${name}`);
        if (Buffer.byteLength(name, "utf8") >= 64) throw new Error(`tensor name too long for ggml (63 bytes at most): ${name}`);
        if (dims.length < 1 || dims.length > 4 || dims.some((dim) => !Number.isSafeInteger(dim) || dim < 0))
            throw new Error(`tensor ${name}: 1 to 4 non-negative integer dims expected, got [${dims.join(", ")}]`);
        if (!Object.hasOwn(tensorTypeLayout, type)) throw new Error(`tensor ${name}: unsupported ggml type ${type}`);
        const provider = data instanceof Float32Array ? () => [data] : data;
        this.tensors.set(name, {name, dims: [...dims], type, data: provider, byteSize: tensorByteSize(dims, type)});
        return this;
    }

    /** Writes the file (to `path + ".partial"`, renamed when complete); resolves to its size in bytes. */
    async write({signal}: {signal?: AbortSignal} = {}): Promise<number> {
        if (this.written) throw new Error("GgufWriter.write() was already called");
        this.written = true;
        const partial = `${this.path}.partial`;
        const file = await BufferedFile.open(partial, this.options.bufferBytes);
        try {
            await file.put(this.header());
            for (const tensor of this.tensors.values()) {
                await this.writeTensor(file, tensor, signal);
                await file.pad(this.options.alignment);
            }
            const size = await file.close();
            await rename(partial, this.path);
            return size;
        } catch (error) {
            await file.close().catch(() => undefined);
            await rm(partial, {force: true});
            throw error;
        }
    }

    private header(): Buffer {
        const out = new ByteBuilder();
        const magic = Buffer.from(GGUF_MAGIC, "latin1");
        out.u32(magic.readUInt32LE(0));
        out.u32(GGUF_VERSION);
        out.u64(this.tensors.size);
        out.u64(this.metadata.size);
        for (const entry of this.metadata.values()) out.entry(entry);
        let offset = 0;
        for (const tensor of this.tensors.values()) {
            out.string(tensor.name);
            out.u32(tensor.dims.length);
            for (const dim of tensor.dims) out.u64(dim);
            out.u32(tensor.type);
            out.u64(offset);
            offset += alignTo(tensor.byteSize, this.options.alignment);
        }
        out.zeros(alignTo(out.length, this.options.alignment) - out.length);
        return out.bytes();
    }

    /** Encodes whole blocks as they arrive; a chunk that ends mid-block leaves the rest for the next. */
    private async writeTensor(file: BufferedFile, tensor: PendingTensor, signal?: AbortSignal) {
        const {blockElements} = tensorTypeLayout[tensor.type];
        const expected = elementCount(tensor.dims);
        const carry = new Float32Array(blockElements);
        let carried = 0;
        let received = 0;
        const encode = (values: Float32Array) =>
            file.putEncoded(encodedSize(tensor.type, values.length), (target, offset) => encodeTensorData(tensor.type, values, target, offset));
        for await (const chunk of tensor.data()) {
            signal?.throwIfAborted();
            received += chunk.length;
            if (received > expected) throw new Error(`tensor ${tensor.name}: more than the ${expected} values its dims hold`);
            let start = 0;
            if (carried > 0) {
                start = Math.min(blockElements - carried, chunk.length);
                carry.set(chunk.subarray(0, start), carried);
                carried += start;
                if (carried < blockElements) continue;
                await encode(carry);
                carried = 0;
            }
            const end = start + Math.floor((chunk.length - start) / blockElements) * blockElements;
            if (end > start) await encode(chunk.subarray(start, end));
            carry.set(chunk.subarray(end), 0);
            carried = chunk.length - end;
        }
        if (received !== expected) throw new Error(`tensor ${tensor.name}: got ${received} values, its dims hold ${expected}`);
    }
}

/** A write-only file with one reusable buffer between the encoders and the disk. */
class BufferedFile {
    private position = 0;
    private size = 0;

    private constructor(private readonly handle: FileHandle, private readonly buffer: Uint8Array) {}

    static async open(path: string, bufferBytes: number) {
        return new BufferedFile(await open(path, "w"), new Uint8Array(bufferBytes));
    }

    async put(bytes: Uint8Array) {
        await this.putEncoded(bytes.length, (target, offset) => target.set(bytes, offset));
    }

    /** Reserves `length` bytes and lets `fill` write them in place (no copy for chunks that fit). */
    async putEncoded(length: number, fill: (target: Uint8Array, offset: number) => void) {
        if (this.position + length > this.buffer.length) await this.flush();
        if (length > this.buffer.length) {
            const direct = new Uint8Array(length);
            fill(direct, 0);
            await this.writeAll(direct);
        } else {
            fill(this.buffer, this.position);
            this.position += length;
        }
        this.size += length;
    }

    async pad(alignment: number) {
        const padding = alignTo(this.size, alignment) - this.size;
        if (padding > 0) await this.put(new Uint8Array(padding));
    }

    private async flush() {
        await this.writeAll(this.buffer.subarray(0, this.position));
        this.position = 0;
    }

    private async writeAll(bytes: Uint8Array) {
        for (let done = 0; done < bytes.length;)
            done += (await this.handle.write(bytes, done, bytes.length - done)).bytesWritten;
    }

    async close(): Promise<number> {
        await this.flush();
        await this.handle.close();
        return this.size;
    }
}
