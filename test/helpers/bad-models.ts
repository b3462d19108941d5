import {readFile, truncate, writeFile} from "node:fs/promises";
import path from "node:path";
import {GgufReader} from "../../src/models/gguf/reader.js";
import {GgufWriter} from "../../src/models/gguf/writer.js";
import {ByteBuilder} from "../../src/models/gguf/metadata.js";
import {alignTo, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgmlType} from "../../src/models/gguf/types.js";
import {testModelPath} from "./model.js";

/** Broken model files, each failing in its own way; written into `dir`. */
export async function writeBadModels(dir: string) {
    const files = {
        missing: path.join(dir, "missing.gguf"),
        notGguf: path.join(dir, "not-gguf.gguf"),
        garbageHeader: path.join(dir, "garbage-header.gguf"),
        truncated: path.join(dir, "truncated.gguf"),
        wrongArchitecture: path.join(dir, "wrong-architecture.gguf"),
        largerThanMemory: path.join(dir, "larger-than-memory.gguf")
    };
    const random = (bytes: number) => Buffer.from(Array.from({length: bytes}, (_, index) => (index * 2654435761) >>> 24));
    await writeFile(files.notGguf, random(4096));
    // The magic and version are right; the counts and lengths after them are nonsense.
    await writeFile(files.garbageHeader, Buffer.concat([Buffer.from("GGUF", "latin1"), Buffer.from([3, 0, 0, 0]), random(4096).fill(0xff, 0, 16)]));

    const model = await readFile(testModelPath);
    await writeFile(files.truncated, model.subarray(0, Math.floor(model.length * 0.6)));

    const wrong = new GgufWriter(files.wrongArchitecture);
    wrong.addMetadata("general.architecture", "edge-test-arch");
    wrong.addMetadata("general.name", "not a real model");
    wrong.addTensor("output_norm.weight", [64], GgmlType.F32, new Float32Array(64).fill(1));
    await wrong.write();

    await writeHugeModel(files.largerThanMemory, 64 * 1024 ** 3);
    return files;
}

/**
 * The test model's metadata (a valid llama header) with one tensor claiming `bytes` of F32
 * weights, as a sparse file of the full size: complete as far as its header goes, far larger
 * than memory, and taking no disk space.
 */
async function writeHugeModel(file: string, bytes: number) {
    const reader = await GgufReader.open(testModelPath);
    const metadata = reader.metadata.filter((entry) => entry.key !== "general.alignment");
    await reader.close();
    const out = new ByteBuilder();
    out.u32(Buffer.from(GGUF_MAGIC, "latin1").readUInt32LE(0));
    out.u32(GGUF_VERSION);
    out.u64(1);
    out.u64(metadata.length);
    for (const entry of metadata) out.entry(entry);
    const columns = 65_536;
    out.string("token_embd.weight");
    out.u32(2);
    out.u64(columns);
    out.u64(Math.ceil(bytes / 4 / columns));
    out.u32(GgmlType.F32);
    out.u64(0);
    out.zeros(alignTo(out.length, GGUF_DEFAULT_ALIGNMENT) - out.length);
    const header = out.bytes();
    await writeFile(file, header);
    await truncate(file, header.length + bytes);
}
