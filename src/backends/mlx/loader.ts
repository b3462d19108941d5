import type {MlxLmModule} from "./mlx-api.js";

/** The MLX backend cannot run here, or its package is missing; the message says what to do. */
export class MlxUnavailableError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "MlxUnavailableError";
    }
}

export const MLX_PACKAGE = "@mlx-node/lm";

export interface MlxLoaderOptions {
    platform?: NodeJS.Platform;
    arch?: string;
    /** Default: a dynamic `import()`; tests pass a fake module with the same API. */
    importModule?: (name: string) => Promise<unknown>;
}

/** Why MLX cannot run on this platform, or undefined on Apple Silicon. */
export function mlxPlatformProblem(platform: string = process.platform, arch: string = process.arch): string | undefined {
    return platform === "darwin" && arch === "arm64"
        ? undefined
        : `The MLX backend needs Apple Silicon (darwin-arm64); this machine is ${platform}-${arch}. Use --backend llama.cpp (the default) here.`;
}

/**
 * Imports `@mlx-node/lm` on darwin-arm64 only — never elsewhere, so its native parts are not
 * even looked for on other machines.
 */
export async function loadMlxModule(options: MlxLoaderOptions = {}): Promise<MlxLmModule> {
    const problem = mlxPlatformProblem(options.platform, options.arch);
    if (problem != null) throw new MlxUnavailableError(problem);
    let loaded: unknown;
    try {
        loaded = await (options.importModule ?? ((name: string) => import(name)))(MLX_PACKAGE);
    } catch (error) {
        throw new MlxUnavailableError(`The MLX backend needs the optional package ${MLX_PACKAGE}: npm install ${MLX_PACKAGE} ` +
            `(${(error as Error).message.split("\n")[0]})`);
    }
    const module = loaded as Partial<MlxLmModule>;
    if (typeof module.loadModel !== "function")
        throw new MlxUnavailableError(`${MLX_PACKAGE} has no loadModel(); edge-llm was written against its 0.0.15 API`);
    return module as MlxLmModule;
}
