import {readFile, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/**
 * stories260K has attention heads of 8 values; quantized KV caches (q8_0, q4_0) need multiples
 * of 32. This writes a copy whose unchanged weights are read as 2 heads of 32 (1 KV head of 32):
 * the projection matrices have the same shapes, so it loads and runs — a different (worse) model,
 * but one the quantized cache can be measured and tested on. Only the header's integers change.
 */
export async function writeRegroupedModel(source: string, target = path.join(os.tmpdir(), `stories260K-heads32-${process.pid}.gguf`)): Promise<string> {
    const file = await readFile(source);
    patchGgufUint32(file, {
        "llama.attention.head_count": 2,
        "llama.attention.head_count_kv": 1,
        "llama.rope.dimension_count": 32
    });
    await writeFile(target, file);
    return target;
}

/** GGUF value type ids → byte sizes of the fixed-size ones (8 = string, 9 = array). */
const FIXED_SIZES: Record<number, number> = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8};
const UINT32 = 4;

/** Overwrites uint32 metadata values in place; throws when a key is missing or not a uint32. */
function patchGgufUint32(file: Buffer, values: Record<string, number>) {
    if (file.toString("latin1", 0, 4) !== "GGUF") throw new Error("not a GGUF file");
    let offset = 16; // magic, version, tensor count
    const entries = Number(file.readBigUInt64LE(offset));
    offset += 8;
    const readString = () => {
        const length = Number(file.readBigUInt64LE(offset));
        const text = file.toString("utf8", offset + 8, offset + 8 + length);
        offset += 8 + length;
        return text;
    };
    const skipValue = (type: number) => {
        if (type === 8) readString();
        else if (type === 9) {
            const elementType = file.readUInt32LE(offset);
            const count = Number(file.readBigUInt64LE(offset + 4));
            offset += 12;
            for (let index = 0; index < count; index++) skipValue(elementType);
        } else offset += FIXED_SIZES[type] ?? Number.NaN;
    };
    const pending = new Set(Object.keys(values));
    for (let entry = 0; entry < entries && pending.size > 0; entry++) {
        const key = readString();
        const type = file.readUInt32LE(offset);
        offset += 4;
        if (pending.has(key)) {
            if (type !== UINT32) throw new Error(`${key} is not a uint32`);
            file.writeUInt32LE(values[key]!, offset);
            pending.delete(key);
        }
        skipValue(type);
    }
    if (pending.size > 0) throw new Error(`missing GGUF keys: ${[...pending].join(", ")}`);
}
