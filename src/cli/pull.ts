import path from "node:path";
import type {Command} from "commander";
import {loadSettings} from "../config/load.js";
import {findCatalog, readCatalog} from "../models/catalog.js";
import {pullModel, type PulledModel} from "../models/pull.js";
import {formatBytes} from "../models/registry.js";

interface PullFlags {
    modelsDir?: string;
    config?: string;
    sha256?: string;
    force?: boolean;
    withDraft?: boolean;
    timeout?: string;
}

export function registerPull(program: Command) {
    program.command("pull")
        .description("download a model into the models folder (progress bar, resumes a cut download, checks the sha256 where known)")
        .argument("<model>", "catalog name (see models/catalog.json), hf:user/repo:quant, hf:user/repo/file.gguf or an https URL")
        .option("--sha256 <hex>", "expected sha256 of the file (catalog entries may carry their own)")
        .option("--force", "download again even when the file is already there")
        .option("--with-draft", "also pull the catalog's draft model for speculative decoding")
        .option("--timeout <seconds>", "give up after this long without an answer or progress (default: downloadTimeoutSeconds, 15)")
        .option("--models-dir <dir>", "folder of models (default ./models)")
        .option("--config <file>", "config file (default ./hono.config.ts)")
        .action((model: string, flags: PullFlags) => pull(model, flags));
}

async function pull(source: string, flags: PullFlags) {
    const settings = await loadSettings({configFile: flags.config, flags: {modelsDir: flags.modelsDir, downloadTimeoutSeconds: flags.timeout}});
    const common = {modelsDir: settings.modelsDir, timeoutSeconds: settings.downloadTimeoutSeconds, force: flags.force === true};
    const pulled = await pullModel({...common, source, sha256: flags.sha256});
    report(pulled);
    if (flags.withDraft !== true) return;
    const draftId = pulled.entry?.draft;
    if (draftId == null) {
        process.stderr.write(`${pulled.entry == null ? "Only catalog models name a draft model" : `${pulled.entry.id} has no draft model in the catalog`}; nothing more to pull.\n`);
        return;
    }
    const catalog = await readCatalog(findCatalog(settings.modelsDir));
    const draft = catalog.models.find((model) => model.id === draftId);
    if (draft == null) throw new Error(`the catalog names draft model "${draftId}" for ${pulled.entry!.id} but has no such model`);
    const pulledDraft = await pullModel({...common, entry: draft});
    report(pulledDraft);
    process.stderr.write(`Serve with speculative decoding: edge-llm serve --model ${path.relative(process.cwd(), pulled.path)} --draft ${path.relative(process.cwd(), pulledDraft.path)}\n`);
}

function report(pulled: PulledModel) {
    const checksum = pulled.verified ? "sha256 verified" : pulled.sha256 == null ? "no checksum known" : `sha256 ${pulled.sha256} (no checksum known to compare)`;
    process.stdout.write(`${pulled.alreadyPresent ? "Already there" : "Pulled"}: ${pulled.path} (${formatBytes(pulled.sizeBytes)}, ${checksum})\n`);
}
