import {z} from "zod";

/**
 * Every setting edge-llm reads, in one schema. Sources, later ones winning:
 * defaults < hono.config.ts (or EDGE_LLM_CONFIG) < EDGE_LLM_* environment variables < CLI flags.
 */
export const settingsSchema = z.object({
    /** GGUF to serve. Unset: the first *.gguf in `modelsDir`. */
    model: z.string().min(1).optional(),
    /** Name clients use in `model`. Unset: the file name without `.gguf`. */
    modelAlias: z.string().min(1).optional(),
    /** Folder of user models (and catalog.json). */
    modelsDir: z.string().min(1).default("models"),
    host: z.string().min(1).default("127.0.0.1"),
    port: z.coerce.number().int().min(0).max(65535).default(8080),
    /** CPU threads for decoding. Unset: chosen per machine and model (never more than physical cores). */
    threads: z.coerce.number().int().min(1).max(512).optional(),
    /** Sequences decoded side by side; the number of requests served at once. */
    parallel: z.coerce.number().int().min(1).max(64).default(4),
    /** Context tokens per sequence. Unset: the model's trained size, at most 2048. */
    ctxSize: z.coerce.number().int().min(64).max(1_048_576).optional(),
    /** Requests that may wait for a free sequence; more get 429. */
    maxQueued: z.coerce.number().int().min(0).max(100_000).default(64),
    /** Largest accepted HTTP request body. */
    maxBodyBytes: z.coerce.number().int().min(1024).default(4 * 1024 * 1024),
    /** Largest accepted WebSocket frame. */
    maxWsFrameBytes: z.coerce.number().int().min(1024).default(1024 * 1024),
    /** "auto" uses Metal, CUDA or Vulkan when present; "cpu" never touches a GPU. */
    gpu: z.enum(["auto", "cpu"]).default("auto"),
    logLevel: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info"),
    /** Seconds to wait for a model download to start before giving up (offline machines). */
    downloadTimeoutSeconds: z.coerce.number().min(1).max(3600).default(15)
});

export type Settings = z.infer<typeof settingsSchema>;
export type SettingsInput = z.input<typeof settingsSchema>;

/** Typed helper for `hono.config.ts`. */
export function defineConfig(config: SettingsInput): SettingsInput {
    return config;
}

/** Environment variable for each setting. */
export const settingsEnv: Record<keyof Settings, string> = {
    model: "EDGE_LLM_MODEL",
    modelAlias: "EDGE_LLM_MODEL_ALIAS",
    modelsDir: "EDGE_LLM_MODELS_DIR",
    host: "EDGE_LLM_HOST",
    port: "EDGE_LLM_PORT",
    threads: "EDGE_LLM_THREADS",
    parallel: "EDGE_LLM_PARALLEL",
    ctxSize: "EDGE_LLM_CTX_SIZE",
    maxQueued: "EDGE_LLM_MAX_QUEUED",
    maxBodyBytes: "EDGE_LLM_MAX_BODY_BYTES",
    maxWsFrameBytes: "EDGE_LLM_MAX_WS_FRAME_BYTES",
    gpu: "EDGE_LLM_GPU",
    logLevel: "EDGE_LLM_LOG_LEVEL",
    downloadTimeoutSeconds: "EDGE_LLM_DOWNLOAD_TIMEOUT"
};
