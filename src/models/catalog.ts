import {existsSync} from "node:fs";
import {readFile} from "node:fs/promises";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {z} from "zod";

/** models/catalog.json: recommended models, the default one, and their draft models. */

const catalogEntry = z.object({
    id: z.string(),
    name: z.string(),
    /** What node-llama-cpp's downloader understands: `hf:user/repo/file.gguf`, `hf:user/repo:quant` or an http(s) URL. */
    uri: z.string(),
    /** The same file for a browser or curl. */
    url: z.string().optional(),
    /** File name the model lands under in the models folder. */
    file: z.string().optional(),
    /** Hex sha256 of the file; when given, a pulled file must match it. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/i, {message: "must be 64 hex digits"}).optional(),
    approxSizeBytes: z.number().optional(),
    /** `id` of a smaller model with the same tokenizer, for speculative decoding. */
    draft: z.string().optional()
}).loose();
const catalogSchema = z.object({default: z.string(), models: z.array(catalogEntry)}).loose();

export type CatalogEntry = z.infer<typeof catalogEntry>;
export type Catalog = z.infer<typeof catalogSchema>;

/** `<modelsDir>/catalog.json` when the user has one, else the catalog shipped with edge-llm. */
export function findCatalog(modelsDir: string): string {
    const candidates = [
        path.join(modelsDir, "catalog.json"),
        // The catalog shipped with edge-llm: src/models/ under tsx, dist/src/models/ when built.
        fileURLToPath(new URL("../../models/catalog.json", import.meta.url)),
        fileURLToPath(new URL("../../../models/catalog.json", import.meta.url))
    ];
    return candidates.find((file) => existsSync(file)) ?? candidates[0]!;
}

export async function readCatalog(file: string): Promise<Catalog> {
    let parsed: unknown;
    try {
        parsed = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
        throw new Error(`cannot read the model catalog ${file}: ${(error as Error).message}`);
    }
    const catalog = catalogSchema.safeParse(parsed);
    if (!catalog.success)
        throw new Error(`the model catalog ${file} is malformed: ${catalog.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`);
    return catalog.data;
}

export async function readDefaultCatalogEntry(file: string): Promise<CatalogEntry> {
    const catalog = await readCatalog(file);
    const entry = catalog.models.find((model) => model.id === catalog.default);
    if (entry == null)
        throw new Error(`the model catalog ${file} names "${catalog.default}" as default but has no such model`);
    return entry;
}

/** `hf:user/repo/path/file.gguf` → its Hugging Face download URL; other forms need the resolver. */
export function httpUrlFor(uri: string): string | undefined {
    if (/^https?:\/\//.test(uri)) return uri;
    const match = /^hf:([^/]+\/[^/:]+)\/([^#]+\.gguf)(?:#(.+))?$/.exec(uri);
    return match == null ? undefined : `https://huggingface.co/${match[1]}/resolve/${match[3] ?? "main"}/${match[2]}`;
}
