import {existsSync} from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";
import {ZodError} from "zod";
import {nestedSettingsEnv, settingsEnv, settingsSchema, type Settings, type SettingsInput} from "./schema.js";

export class SettingsError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "SettingsError";
    }
}

export interface LoadSettingsOptions {
    /** Values from CLI flags (undefined entries are ignored). */
    flags?: Partial<Record<keyof Settings, unknown>>;
    env?: NodeJS.ProcessEnv;
    /** Config file; default: $EDGE_LLM_CONFIG, else ./hono.config.ts when it exists. */
    configFile?: string;
    cwd?: string;
}

/** Merges defaults, the config file, the environment and flags, and validates the result. */
export async function loadSettings(options: LoadSettingsOptions = {}): Promise<Settings> {
    const env = options.env ?? process.env;
    const cwd = options.cwd ?? process.cwd();
    const configFile = options.configFile ?? env.EDGE_LLM_CONFIG ?? defaultConfigFile(cwd);

    const layers: [string, Record<string, unknown>][] = [];
    if (configFile != null)
        layers.push([`config file ${configFile}`, await readConfigFile(path.resolve(cwd, configFile))]);
    layers.push(["environment", fromEnv(env)]);
    layers.push(["command-line flags", dropUndefined(options.flags ?? {})]);

    const merged: Record<string, unknown> = {};
    for (const [source, values] of layers) {
        const checked = settingsSchema.partial().strict().safeParse(values);
        if (!checked.success)
            throw new SettingsError(describe(checked.error, source));
        mergeInto(merged, values);
    }
    const settings = settingsSchema.safeParse(merged);
    if (!settings.success)
        throw new SettingsError(describe(settings.error, "settings"));
    return settings.data;
}

function defaultConfigFile(cwd: string) {
    const file = path.join(cwd, "hono.config.ts");
    return existsSync(file) ? file : undefined;
}

async function readConfigFile(file: string): Promise<Record<string, unknown>> {
    if (!existsSync(file))
        throw new SettingsError(`Config file not found: ${file}`);
    let loaded: {default?: unknown};
    try {
        if (/\.[cm]?ts$/.test(file)) {
            const {tsImport} = await import("tsx/esm/api");
            loaded = await tsImport(pathToFileURL(file).href, import.meta.url);
        } else
            loaded = await import(pathToFileURL(file).href);
    } catch (error) {
        throw new SettingsError(`Cannot load config file ${file}: ${(error as Error).message}`);
    }
    let config = loaded.default;
    // A .ts file outside an ESM package is loaded as CommonJS: its default export sits one level down.
    if (config != null && typeof config === "object" && "default" in config)
        config = (config as {default: unknown}).default;
    if (config == null || typeof config !== "object")
        throw new SettingsError(`Config file ${file} must export a settings object as default (export default defineConfig({...}))`);
    return config as SettingsInput as Record<string, unknown>;
}

function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [key, name] of Object.entries(settingsEnv)) {
        const value = env[name!];
        if (value != null && value !== "")
            values[key] = value;
    }
    for (const [name, [key, field]] of Object.entries(nestedSettingsEnv)) {
        const value = env[name];
        if (value != null && value !== "")
            values[key] = {...(values[key] as object | undefined), [field]: value};
    }
    return values;
}

/** Later layers win; objects (like `power`) are merged field by field. */
function mergeInto(target: Record<string, unknown>, values: Record<string, unknown>) {
    for (const [key, value] of Object.entries(values)) {
        const previous = target[key];
        target[key] = isPlainObject(previous) && isPlainObject(value) ? {...previous, ...value} : value;
    }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
    return value != null && typeof value === "object" && !Array.isArray(value);
}

function dropUndefined(values: Record<string, unknown>) {
    return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined));
}

function describe(error: ZodError, source: string) {
    const lines = error.issues.map((issue) => {
        const key = issue.path.join(".");
        const envName = source !== "environment" ? undefined
            : settingsEnv[key as keyof Settings] ?? Object.entries(nestedSettingsEnv).find(([, path]) => path.join(".") === key)?.[0];
        const name = envName != null ? `${envName}` : key || "(root)";
        return `  - ${name}: ${issue.message}`;
    });
    return `Invalid ${source}:\n${lines.join("\n")}`;
}
