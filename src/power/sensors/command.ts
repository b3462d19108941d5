import {execFile} from "node:child_process";
import {accessSync, constants} from "node:fs";
import path from "node:path";

/**
 * Runs a command and resolves with its stdout, or `undefined` when it is missing, fails, or
 * takes longer than `timeoutMs`. Never rejects, so sensors can run several in parallel.
 */
export type CommandRunner = (file: string, args: readonly string[], timeoutMs: number) => Promise<string | undefined>;

export const runCommand: CommandRunner = (file, args, timeoutMs) =>
    new Promise((resolve) => {
        try {
            execFile(
                file,
                args,
                {timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 1024 * 1024, windowsHide: true, encoding: "utf8"},
                (error, stdout) => resolve(error == null ? stdout : undefined)
            );
        } catch {
            resolve(undefined);
        }
    });

/**
 * Whether an executable named `name` is on PATH. Checks the PATH folders with `access(X_OK)`
 * instead of spawning `which`; meant to run once at startup, not per poll.
 */
export function commandOnPath(name: string, pathVariable = process.env.PATH ?? "") {
    for (const folder of pathVariable.split(path.delimiter)) {
        if (folder === "")
            continue;
        try {
            accessSync(path.join(folder, name), constants.X_OK);
            return true;
        } catch {
            // not in this folder
        }
    }
    return false;
}

/**
 * Wraps an async function so overlapping calls share the one in flight: a slow command
 * (termux-api can take a second) never piles up processes when the governor polls faster.
 */
export function singleFlight<T>(fn: () => Promise<T>): () => Promise<T> {
    let inFlight: Promise<T> | undefined;
    return () => {
        inFlight ??= fn().finally(() => {
            inFlight = undefined;
        });
        return inFlight;
    };
}
