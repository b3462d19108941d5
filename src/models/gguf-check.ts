import {open} from "node:fs/promises";

export class ModelFileError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ModelFileError";
    }
}

const GGUF_MAGIC = "GGUF";

/**
 * Checks that `path` is a readable GGUF file before llama.cpp sees it, so a wrong path or a
 * file of another format gets a clear message instead of a native loader error.
 */
export async function assertReadableGguf(path: string): Promise<void> {
    let handle;
    try {
        handle = await open(path, "r");
    } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT")
            throw new ModelFileError(`Model file not found: ${path}`);
        throw new ModelFileError(`Cannot read model file ${path}: ${(error as Error).message}`);
    }
    try {
        const header = Buffer.alloc(8);
        const {bytesRead} = await handle.read(header, 0, 8, 0);
        if (bytesRead < 8 || header.toString("latin1", 0, 4) !== GGUF_MAGIC)
            throw new ModelFileError(`Not a GGUF model file: ${path} (llama.cpp models are .gguf files that start with "GGUF")`);
    } finally {
        await handle.close();
    }
}
