import {readdir, stat} from "node:fs/promises";
import path from "node:path";
import {GgmlType, GgufFileType, readGgufFileInfo, type GgufFileInfo} from "node-llama-cpp";
import {assertReadableGguf} from "./gguf-check.js";

/** What `edge-llm models` shows for one file. Fields the file does not tell are left out. */
export interface ModelFileSummary {
    /** File name, e.g. `Llama-3.2-1B-Instruct-Q4_K_M.gguf`. */
    file: string;
    path: string;
    sizeBytes: number;
    architecture?: string;
    /** Weights, counted from the tensor shapes. */
    parameters?: number;
    /** `general.size_label` when the file has one (e.g. "1B"), else derived from `parameters`. */
    sizeLabel?: string;
    /** e.g. "Q4_K_M", from `general.file_type`, else the type holding most weights. */
    quantization?: string;
    /** Trained context length from `<arch>.context_length`. */
    contextLength?: number;
    /** Set when the file could not be read as a GGUF model; the other facts are then missing. */
    error?: string;
}

/** The `*.gguf` files in `dir`, sorted by name; none when the folder does not exist. */
export async function listModelFiles(dir: string): Promise<string[]> {
    let entries;
    try {
        entries = await readdir(dir, {withFileTypes: true});
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw error;
    }
    return entries
        .filter((entry) => /\.gguf$/i.test(entry.name) && (entry.isFile() || entry.isSymbolicLink()))
        .map((entry) => entry.name)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
        .map((name) => path.join(dir, name));
}

/** Summaries of every GGUF in `dir`; unreadable files carry an `error` instead of failing the scan. */
export async function scanModels(dir: string): Promise<ModelFileSummary[]> {
    return Promise.all((await listModelFiles(dir)).map(describeModelFile));
}

/** Reads only the GGUF header (metadata + tensor table), never the weights. */
export async function describeModelFile(file: string): Promise<ModelFileSummary> {
    const summary: ModelFileSummary = {file: path.basename(file), path: path.resolve(file), sizeBytes: 0};
    try {
        await assertReadableGguf(file);
        summary.sizeBytes = (await stat(file)).size;
        const info = await readGgufFileInfo(file, {logWarnings: false, ignoreKeys: ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"]});
        Object.assign(summary, summarize(info));
    } catch (error) {
        summary.error = (error as Error).message || String(error);
    }
    return summary;
}

function summarize(info: GgufFileInfo): Partial<ModelFileSummary> {
    const general = info.metadata.general;
    const parameters = countParameters(info);
    const sizeLabel = typeof general?.size_label === "string" ? general.size_label : undefined;
    const contextLength = Number(info.architectureMetadata.context_length);
    return {
        architecture: general?.architecture == null ? undefined : String(general.architecture),
        parameters,
        sizeLabel: sizeLabel ?? (parameters == null ? undefined : formatCount(parameters)),
        quantization: fileTypeName(general?.file_type) ?? dominantTensorType(info),
        contextLength: Number.isFinite(contextLength) && contextLength > 0 ? contextLength : undefined
    };
}

function countParameters(info: GgufFileInfo): number | undefined {
    const tensors = info.fullTensorInfo ?? info.tensorInfo;
    if (tensors == null || tensors.length === 0) return undefined;
    let total = 0;
    for (const tensor of tensors)
        total += tensor.dimensions.reduce<number>((product, dim) => product * Number(dim), 1);
    return total;
}

function fileTypeName(fileType: unknown): string | undefined {
    if (typeof fileType !== "number") return undefined;
    const name = GgufFileType[fileType];
    return name?.replace(/^(MOSTLY|ALL)_/, "");
}

/** Older or hand-made files have no `general.file_type`: name the type that holds the most weights. */
function dominantTensorType(info: GgufFileInfo): string | undefined {
    const weights = new Map<number, number>();
    for (const tensor of info.fullTensorInfo ?? info.tensorInfo ?? []) {
        const count = tensor.dimensions.reduce<number>((product, dim) => product * Number(dim), 1);
        weights.set(tensor.ggmlType, (weights.get(tensor.ggmlType) ?? 0) + count);
    }
    let best: number | undefined;
    for (const [type, count] of weights)
        if (best == null || count > weights.get(best)!) best = type;
    return best == null ? undefined : (GgmlType[best] ?? `type ${best}`);
}

/** 292800 → "292.8K", 1235814400 → "1.2B". */
export function formatCount(value: number): string {
    for (const [unit, size] of [["T", 1e12], ["B", 1e9], ["M", 1e6], ["K", 1e3]] as const)
        if (value >= size) return `${trim(value / size)}${unit}`;
    return String(value);
}

/** 1185376 → "1.2 MB" (decimal units, as download pages show them). */
export function formatBytes(bytes: number): string {
    for (const [unit, size] of [["TB", 1e12], ["GB", 1e9], ["MB", 1e6], ["KB", 1e3]] as const)
        if (bytes >= size) return `${trim(bytes / size)} ${unit}`;
    return `${bytes} B`;
}

function trim(value: number) {
    return value >= 100 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, "");
}

/**
 * A model named on the command line: a path to a file, a file in `modelsDir` (with or without
 * `.gguf`, any case), or a catalog id whose file is there. Undefined when none matches.
 */
export async function findModelFile(name: string, modelsDir: string, catalogFiles: Record<string, string | undefined> = {}): Promise<string | undefined> {
    const isFile = (file: string) => stat(file).then((info) => info.isFile(), () => false);
    if (name.includes("/") || name.includes(path.sep)) return await isFile(name) ? path.resolve(name) : undefined;
    const files = await listModelFiles(modelsDir);
    const wanted = [name, `${name}.gguf`, catalogFiles[name.toLowerCase()]].filter((candidate): candidate is string => candidate != null)
        .map((candidate) => candidate.toLowerCase());
    const found = files.find((file) => wanted.includes(path.basename(file).toLowerCase()));
    return found == null ? undefined : path.resolve(found);
}
