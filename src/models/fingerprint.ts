import {createHash} from "node:crypto";
import {open} from "node:fs/promises";

const SAMPLE_BYTES = 1024 * 1024;

/**
 * A cheap identity for a model file plus the context layout its KV states depend on: the file
 * size and its first and last MiB (GGUF header, metadata, tokenizer and the tail of the weights),
 * hashed with `layout`. Hashing a multi-GB file whole at every start would cost seconds.
 */
export async function modelFingerprint(file: string, layout: Record<string, unknown>): Promise<string> {
    const handle = await open(file, "r");
    try {
        const {size} = await handle.stat();
        const hash = createHash("sha256");
        hash.update(JSON.stringify({size, layout}));
        const head = Buffer.alloc(Math.min(SAMPLE_BYTES, size));
        await handle.read(head, 0, head.length, 0);
        hash.update(head);
        const tailLength = Math.min(SAMPLE_BYTES, Math.max(0, size - head.length));
        const tail = Buffer.alloc(tailLength);
        await handle.read(tail, 0, tailLength, size - tailLength);
        hash.update(tail);
        return hash.digest("hex").slice(0, 32);
    } finally {
        await handle.close();
    }
}
