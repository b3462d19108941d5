import {parseArgs} from "node:util";
import path from "node:path";
import {loadableBuildRecord} from "../backends/llama-cpp/auto-native-build.js";
import {loadSettings} from "../config/load.js";
import {createLogger} from "../logger.js";
import {gpuSupported, relaunch, singlePoolReason} from "./single-pool.js";

/**
 * The relaunch of `serve` and in-process `chat` with one libuv pool thread (single-pool.ts),
 * decided before the command's modules load. The parent only waits for its child and forwards signals; had it loaded the
 * server first it would hold ~86 MiB of private memory for nothing (measured: 132 MiB RSS, 86 MiB
 * private, idle, beside a 169 MiB server). Only the settings the decision needs are read here
 * (`--config`, `--gpu`, `--backend`, `--max-loaded-models`, environment, config file); anything
 * odd — help, a bad config — is left to the command itself, which decides again.
 *
 * Returns the child's exit code, or undefined when this process should run the command itself.
 */
export async function relaunchEarly(argv: readonly string[]): Promise<number | undefined> {
    const command = argv[2];
    if ((command !== "serve" && command !== "chat") || process.env.UV_THREADPOOL_SIZE != null || process.env.EDGE_LLM_RELAUNCHED != null) return undefined;
    const {values} = parseArgs({
        args: argv.slice(3), strict: false, allowPositionals: true,
        options: {
            "config": {type: "string"}, "gpu": {type: "string"}, "backend": {type: "string"}, "max-loaded-models": {type: "string"},
            "log-level": {type: "string"}, "url": {type: "string"}, "help": {type: "boolean", short: "h"}
        }
    });
    // `chat --url` talks to a server: nothing decodes here.
    if (values.help === true || (command === "chat" && values.url != null)) return undefined;
    const settings = await loadSettings({
        configFile: typeof values.config === "string" ? values.config : undefined,
        flags: {
            gpu: values.gpu as string | undefined, backend: values.backend as string | undefined,
            maxLoadedModels: values["max-loaded-models"] as string | undefined, logLevel: values["log-level"] as string | undefined
        }
    }).catch(() => undefined);
    if (settings == null) return undefined;
    const reason = await singlePoolReason(settings, (await loadableBuildRecord(path.resolve(settings.nativeBuildRecord), settings.nativeBuild)).record, gpuSupported);
    if (reason == null) return undefined;
    createLogger(settings.logLevel).debug(`relaunching with UV_THREADPOOL_SIZE=1: ${reason}`);
    // The chat reads the terminal: its child stays in the terminal's process group (relaunch).
    return relaunch({UV_THREADPOOL_SIZE: "1"}, {foreground: command === "chat"});
}
