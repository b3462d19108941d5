import {readdir, rm, stat} from "node:fs/promises";
import path from "node:path";
import type {Command} from "commander";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {loadSettings} from "../config/load.js";
import {findCatalog, readCatalog} from "../models/catalog.js";
import {inspectModel, type ModelInspection} from "../models/inspect.js";
import {DOWNLOADS_DIR} from "../models/pull.js";
import {describeModelFile, findModelFile, formatBytes, formatCount, scanModels, type ModelFileSummary} from "../models/registry.js";

interface ModelsFlags {
    modelsDir?: string;
    config?: string;
    json?: boolean;
}

export function registerModels(program: Command) {
    const models = program.command("models")
        .description("list (default), inspect or remove GGUF models in the models folder");
    models.command("list", {isDefault: true})
        .description("list GGUF models with architecture, size, quantization and context length")
        .argument("[paths...]", "model files or folders (default: the models folder)")
        .option("--models-dir <dir>", "folder of models (default ./models)")
        .option("--config <file>", "config file (default ./hono.config.ts)")
        .option("--json", "print JSON instead of a table")
        .action(async (paths: string[], flags: ModelsFlags) => {
            let folder: string | undefined;
            let models: ModelFileSummary[];
            if (paths.length > 0)
                models = (await Promise.all(paths.map(describePath))).flat();
            else {
                const settings = await loadSettings({configFile: flags.config, flags: {modelsDir: flags.modelsDir}});
                folder = path.resolve(settings.modelsDir);
                models = await scanModels(settings.modelsDir);
            }
            process.stdout.write(flags.json === true
                ? `${JSON.stringify(folder == null ? {models} : {modelsDir: folder, models}, null, 2)}\n`
                : renderTable(models, folder));
        });
    models.command("inspect")
        .description("show a model's GGUF metadata and whether it fits in memory here")
        .argument("<name>", "file in the models folder (with or without .gguf), catalog name, or path")
        .option("-c, --ctx-size <tokens>", "context tokens per sequence for the estimate (default: the model's, at most 2048)")
        .option("--parallel <n>", "sequences for the estimate (default: the parallel setting, 4)")
        .option("--gpu <mode>", "auto or cpu: where the estimate places the model")
        .option("--models-dir <dir>", "folder of models (default ./models)")
        .option("--config <file>", "config file (default ./hono.config.ts)")
        .option("--json", "print JSON (all metadata keys)")
        .action(async (name: string, flags: ModelsFlags & {ctxSize?: string; parallel?: string; gpu?: string}) => {
            const settings = await loadSettings({configFile: flags.config, flags: {modelsDir: flags.modelsDir, ctxSize: flags.ctxSize, parallel: flags.parallel, gpu: flags.gpu}});
            const file = await locate(name, settings.modelsDir);
            const llama = await getLlama({gpu: settings.gpu === "cpu" ? false : "auto", build: "never", logLevel: LlamaLogLevel.error});
            try {
                const inspection = await inspectModel(file, {llama, contextSize: settings.ctxSize, sequences: settings.parallel});
                if (inspection.error != null) throw new Error(`${file}: ${inspection.error}`);
                process.stdout.write(flags.json === true ? `${JSON.stringify(inspection, null, 2)}\n` : renderInspection(inspection));
            } finally {
                await llama.dispose();
            }
        });
    models.command("rm")
        .description("delete models from the models folder (and their unfinished downloads)")
        .argument("<names...>", "files in the models folder (with or without .gguf) or catalog names")
        .option("--models-dir <dir>", "folder of models (default ./models)")
        .option("--config <file>", "config file (default ./hono.config.ts)")
        .action(async (names: string[], flags: ModelsFlags) => {
            const settings = await loadSettings({configFile: flags.config, flags: {modelsDir: flags.modelsDir}});
            const dir = path.resolve(settings.modelsDir);
            const files = await Promise.all(names.map((name) => locate(name, dir)));
            for (const file of files) {
                if (path.dirname(file) !== dir)
                    throw new Error(`${file} is not in the models folder ${dir}; \`models rm\` only deletes models there`);
            }
            for (const file of files) {
                const freed = (await stat(file)).size;
                await rm(file);
                await removePartialDownloads(dir, path.basename(file));
                process.stdout.write(`Deleted ${file} (${formatBytes(freed)})\n`);
            }
        });
}

/** A name from the command line → a model file, or an error listing what there is. */
async function locate(name: string, modelsDir: string): Promise<string> {
    const catalogFiles: Record<string, string | undefined> = {};
    try {
        for (const entry of (await readCatalog(findCatalog(modelsDir))).models)
            catalogFiles[entry.id.toLowerCase()] = entry.file;
    } catch {
        // No readable catalog: names are file names only.
    }
    const file = await findModelFile(name, modelsDir, catalogFiles);
    if (file != null) return file;
    const available = (await scanModels(modelsDir)).map((model) => model.file);
    throw new Error(`No model "${name}" in ${path.resolve(modelsDir)}` +
        (available.length > 0 ? `; there are: ${available.join(", ")}` : " (it has no .gguf files)") +
        `. \`edge-llm pull ${name}\` downloads catalog models.`);
}

async function removePartialDownloads(modelsDir: string, file: string) {
    const downloads = path.join(modelsDir, DOWNLOADS_DIR);
    const names = await readdir(downloads).catch(() => [] as string[]);
    for (const name of names)
        if (name === file || name.startsWith(`${file}.`)) await rm(path.join(downloads, name), {force: true});
}

function renderInspection(model: ModelInspection): string {
    const rows: [string, string | number | undefined][] = [
        ["file", model.path],
        ["name", model.name],
        ["architecture", model.architecture],
        ["parameters", model.parameters == null ? undefined : `${formatCount(model.parameters)} (${model.parameters})`],
        ["quantization", model.quantization],
        ["size", formatBytes(model.sizeBytes)],
        ["context length", model.contextLength],
        ["layers", model.layers],
        ["embedding", model.embeddingLength],
        ["heads / KV heads", model.heads == null ? undefined : `${model.heads} / ${model.kvHeads ?? model.heads}`],
        ["vocabulary", model.vocabularySize],
        ["chat template", model.chatTemplate ? "yes" : "no (a generic template is used)"],
        ["KV cache (f16)", model.kvBytesPerToken == null ? undefined : `${formatBytes(model.kvBytesPerToken)} per token`]
    ];
    const memory = model.memory;
    if (memory != null) {
        rows.push(
            ["memory estimate", `${formatBytes(memory.modelBytes)} weights + ${formatBytes(memory.contextBytes)} for ${memory.sequences} × ${memory.contextSize} tokens of context` +
                ` (${memory.onGpu ? "GPU" : "CPU"})`],
            [`free ${memory.memoryName}`, formatBytes(memory.freeBytes)],
            ["fits", memory.decision === "fit" ? "yes"
                : memory.decision === "shrink" ? `only with a smaller context: ${memory.fittingContextSize} tokens per sequence (memoryFit "shrink" does that)`
                    : "no"]
        );
    }
    const shown = rows.filter((row): row is [string, string | number] => row[1] != null);
    const width = Math.max(...shown.map(([label]) => label.length));
    const lines = shown.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
    if (memory?.decision === "refuse" && memory.message != null) lines.push("", memory.message);
    lines.push("", "(--json prints every metadata key)");
    return `${lines.join("\n")}\n`;
}

async function describePath(target: string): Promise<ModelFileSummary[]> {
    const isDir = await stat(target).then((info) => info.isDirectory(), () => false);
    return isDir ? scanModels(target) : [await describeModelFile(target)];
}

function renderTable(models: ModelFileSummary[], folder: string | undefined): string {
    if (models.length === 0)
        return `No .gguf files in ${folder ?? "the given paths"}.\n` +
            "Put a model there, `edge-llm pull NAME` one from models/catalog.json, or pass --model to `edge-llm serve`.\n";
    const header = ["FILE", "ARCH", "PARAMS", "QUANT", "CONTEXT", "SIZE"];
    const rows = models.filter((model) => model.error == null).map((model) => [
        model.file,
        model.architecture ?? "?",
        model.sizeLabel ?? (model.parameters == null ? "?" : formatCount(model.parameters)),
        model.quantization ?? "?",
        model.contextLength == null ? "?" : String(model.contextLength),
        formatBytes(model.sizeBytes)
    ]);
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
    const format = (row: string[]) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd();
    const lines = rows.length > 0 ? [format(header), ...rows.map(format)] : [];
    const broken = models.filter((model) => model.error != null);
    if (broken.length > 0) {
        if (lines.length > 0) lines.push("");
        lines.push("Unreadable:");
        for (const model of broken) lines.push(`  ${model.file}: ${model.error}`);
    }
    if (folder != null) lines.push("", `(${folder})`);
    return `${lines.join("\n")}\n`;
}
