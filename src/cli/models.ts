import {stat} from "node:fs/promises";
import path from "node:path";
import type {Command} from "commander";
import {loadSettings} from "../config/load.js";
import {describeModelFile, formatBytes, formatCount, scanModels, type ModelFileSummary} from "../models/registry.js";

interface ModelsFlags {
    modelsDir?: string;
    config?: string;
    json?: boolean;
}

export function registerModels(program: Command) {
    program.command("models")
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
}

async function describePath(target: string): Promise<ModelFileSummary[]> {
    const isDir = await stat(target).then((info) => info.isDirectory(), () => false);
    return isDir ? scanModels(target) : [await describeModelFile(target)];
}

function renderTable(models: ModelFileSummary[], folder: string | undefined): string {
    if (models.length === 0)
        return `No .gguf files in ${folder ?? "the given paths"}.\n` +
            "Put a model there, pass --model to `edge-llm serve`, or let `edge-llm serve` download the default from models/catalog.json.\n";
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
