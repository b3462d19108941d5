import {existsSync, statSync} from "node:fs";
import {mkdir, readFile, writeFile} from "node:fs/promises";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {z} from "zod";

/**
 * Local source builds of node-llama-cpp's bundled llama.cpp: the presets in native/presets.json,
 * the exact command and environment that builds one, and the record of the last build, which
 * the backend reads at start-up to load that build instead of the prebuilt binary.
 */

const presetSchema = z.object({
    description: z.string(),
    gpu: z.union([z.literal(false), z.enum(["vulkan", "cuda", "metal"])]),
    cmake: z.record(z.string(), z.string()),
    platforms: z.array(z.string()),
    requiresEnv: z.array(z.string()).optional(),
    /** The backend is not one of node-llama-cpp's GPU types, so layers must be offloaded explicitly. */
    offload: z.boolean().optional(),
    needs: z.string().optional()
});
export type NativePreset = z.infer<typeof presetSchema>;

const presetsFileSchema = z.object({presets: z.record(z.string(), presetSchema)}).loose();

/** A binary's autotuned settings and the medians of its timed requests. */
const binaryScoreSchema = z.object({
    threads: z.number(),
    flashAttention: z.boolean(),
    decodeTokensPerSecond: z.number(),
    prefillTokensPerSecond: z.number()
});

/** The local build measured against the prebuilt binary on a model (src/backends/llama-cpp/build-comparison.ts). */
const comparisonSchema = z.object({
    model: z.string(),
    measuredAt: z.string(),
    /** Requests timed per binary, alternating with the other binary's. */
    requests: z.number(),
    prebuilt: binaryScoreSchema,
    local: binaryScoreSchema,
    /** Median over request pairs of the prebuilt binary's time per request over the local build's: > 1 when the local build is faster. */
    ratio: z.number(),
    pays: z.boolean()
});
export type BuildComparison = z.infer<typeof comparisonSchema>;
export type BinaryScore = z.infer<typeof binaryScoreSchema>;

/** What scripts/build-backend.ts writes after a successful build. */
const recordSchema = z.object({
    preset: z.string(),
    gpu: presetSchema.shape.gpu,
    cmakeOptions: z.record(z.string(), z.string()),
    offload: z.boolean().optional(),
    builtAt: z.string(),
    platform: z.string(),
    command: z.string(),
    /** Set when the build was compared with the prebuilt binary (`--compare`). */
    comparison: comparisonSchema.optional(),
    /** Why a comparison that was asked for did not finish. */
    comparisonError: z.string().optional()
});
export type NativeBuildRecord = z.infer<typeof recordSchema>;

/** native/presets.json: in the repo root under tsx, one level up when built into dist/. */
export function presetsFile(): string {
    const candidates = ["../../../native/presets.json", "../../../../native/presets.json"]
        .map((relative) => fileURLToPath(new URL(relative, import.meta.url)));
    return candidates.find((file) => existsSync(file)) ?? candidates[0]!;
}

export async function readPresets(file = presetsFile()): Promise<Record<string, NativePreset>> {
    const parsed = presetsFileSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
    if (!parsed.success) throw new Error(`${file} is malformed: ${parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`);
    return parsed.data.presets;
}

/** `linux-arm64`, `darwin-arm64`, … — Termux reports linux but sets PREFIX under com.termux. */
export function currentPlatform(env: NodeJS.ProcessEnv = process.env): string {
    const os = process.platform === "linux" && env.PREFIX?.includes("com.termux") ? "android" : process.platform;
    return `${os}-${process.arch}`;
}

export interface BuildPlan {
    preset: string;
    /** The program and its arguments. */
    command: string[];
    /** Variables to add to the environment. */
    env: Record<string, string>;
    cmakeOptions: Record<string, string>;
    /** Reasons the build cannot work here; empty when it can be tried. */
    problems: string[];
}

/**
 * The command that builds `preset`: node-llama-cpp's `source download` clones the llama.cpp
 * release bundled in the package (no network needed) and compiles it with `--gpu` and every
 * `NODE_LLAMA_CPP_CMAKE_OPTION_<NAME>` variable as `-D<NAME>=<value>`.
 */
export function planBuild(name: string, presets: Record<string, NativePreset>, options: {env?: NodeJS.ProcessEnv; platform?: string} = {}): BuildPlan {
    const preset = presets[name];
    if (preset == null) throw new Error(`No build preset "${name}"; presets: ${Object.keys(presets).join(", ")}`);
    const env = options.env ?? process.env;
    const platform = options.platform ?? currentPlatform(env);
    const problems: string[] = [];
    if (!preset.platforms.includes(platform))
        problems.push(`preset "${name}" is for ${preset.platforms.join(", ")}, this machine is ${platform}`);
    for (const variable of preset.requiresEnv ?? []) {
        const value = env[variable];
        if (value == null || value === "") problems.push(`${variable} is not set (${preset.needs ?? "see native/README.md"})`);
        else if (!isDirectory(value)) problems.push(`${variable}=${value} is not a folder`);
    }
    const cmakeOptions = Object.fromEntries(Object.entries(preset.cmake).map(([key, value]) =>
        [key, value.replace(/\$env\{(\w+)\}/g, (_, variable: string) => env[variable] ?? "")]));
    return {
        preset: name,
        command: ["npx", "--no", "node-llama-cpp", "source", "download", "--gpu", preset.gpu === false ? "false" : preset.gpu, "--noUsageExample"],
        env: Object.fromEntries(Object.entries(cmakeOptions).map(([key, value]) => [`NODE_LLAMA_CPP_CMAKE_OPTION_${key}`, value])),
        cmakeOptions,
        problems
    };
}

function isDirectory(file: string) {
    try {
        return statSync(file).isDirectory();
    } catch {
        return false;
    }
}

/** Where the record of the last local build lives. */
export const DEFAULT_BUILD_RECORD = ".edge-llm/native-build.json";

export async function writeBuildRecord(file: string, record: NativeBuildRecord) {
    await mkdir(path.dirname(file), {recursive: true});
    await writeFile(file, `${JSON.stringify(record, null, 2)}\n`);
}

/** The recorded build, or undefined when there is none; a malformed record is an error. */
export async function readBuildRecord(file: string): Promise<NativeBuildRecord | undefined> {
    if (!existsSync(file)) return undefined;
    const parsed = recordSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
    if (!parsed.success) throw new Error(`${file} is not a native build record: ${parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; ")}`);
    return parsed.data;
}
