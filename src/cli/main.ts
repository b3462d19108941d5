import {readFileSync} from "node:fs";
import {fileURLToPath} from "node:url";
import {Command, CommanderError} from "commander";
import {SettingsError} from "../config/load.js";
import {relaunchEarly} from "./early-relaunch.js";

// Before the commands' modules load: a parent that only waits for its relaunched child should not hold them.
const relaunched = await relaunchEarly(process.argv);
if (relaunched != null) process.exit(relaunched);

const {registerChat} = await import("./chat.js");
const {registerDoctor} = await import("./doctor.js");
const {registerModels} = await import("./models.js");
const {registerPull} = await import("./pull.js");
const {registerServe} = await import("./serve.js");

/**
 * The `edge-llm` program. Exit codes: 0 ok, 1 runtime failure (no model, model failed to
 * load, …), 2 bad usage or invalid settings. Errors print their message only; the stack
 * trace too with --log-level debug|trace (or EDGE_LLM_LOG_LEVEL).
 */
const program = new Command("edge-llm")
    .description("On-device LLM runtime: llama.cpp behind an OpenAI-compatible streaming API, a WebSocket API and a terminal chat")
    .version(packageVersion())
    // Throw instead of exiting, so usage errors get exit code 2 like settings errors.
    .exitOverride();
registerServe(program);
registerChat(program);
registerModels(program);
registerPull(program);
registerDoctor(program);

try {
    await program.parseAsync(process.argv);
} catch (error) {
    process.exit(report(error));
}

function report(error: unknown): number {
    // Commander has already printed its own message (or the help / version).
    if (error instanceof CommanderError)
        return error.exitCode === 0 ? 0 : 2;
    if (error instanceof SettingsError) {
        process.stderr.write(`${error.message}\n`);
        return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`error: ${message}\n`);
    if (wantsStack() && error instanceof Error && error.stack != null)
        process.stderr.write(`${error.stack}\n`);
    return 1;
}

function wantsStack() {
    const argv = process.argv.join(" ");
    return /--log-level[ =](debug|trace)\b/.test(argv) || ["debug", "trace"].includes(process.env.EDGE_LLM_LOG_LEVEL ?? "");
}

function packageVersion(): string {
    // src/cli/ under tsx, dist/src/cli/ when built.
    for (const relative of ["../../package.json", "../../../package.json"]) {
        try {
            const manifest = JSON.parse(readFileSync(fileURLToPath(new URL(relative, import.meta.url)), "utf8")) as {name?: string; version?: string};
            if (manifest.name === "edge-llm" && manifest.version != null) return manifest.version;
        } catch {
            // try the next location
        }
    }
    return "0.0.0";
}
