import {z} from "zod";
import {powerLimitsSchema} from "../power/limits.js";

/** A boolean that also accepts "true"/"false"/"1"/"0" (environment variables). */
const flag = z.union([z.boolean(), z.enum(["true", "false", "1", "0"]).transform((value) => value === "true" || value === "1")]);

/** A list of strings, also given as one comma-separated string (environment variables). */
const stringList = z.union([
    z.array(z.string().min(1)),
    z.string().transform((value) => value.split(",").map((part) => part.trim()).filter((part) => part.length > 0))
]);

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
    /**
     * With `threads` unset on CPU: measure decode speed per thread count at a model's first load
     * on this machine and use the fastest (cached in `threadTuningFile`); false: a size heuristic.
     */
    autotuneThreads: flag.default(true),
    threadTuningFile: z.string().min(1).default(".edge-llm/thread-tuning.json"),
    /** Sequences decoded side by side; the number of requests served at once. */
    parallel: z.coerce.number().int().min(1).max(64).default(4),
    /** Context tokens per sequence. Unset: the model's trained size, at most 2048. */
    ctxSize: z.coerce.number().int().min(64).max(1_048_576).optional(),
    /**
     * A prompt or answer that outgrows the context: "error" (400 / finish_reason length),
     * "truncate" (drop the oldest prompt tokens after the sinks) or "slide" (also drop the oldest
     * KV tokens after the sinks while generating). Requests may override it (`context_overflow`).
     * Unset: "error" for `serve` (what OpenAI clients expect), "truncate" for `chat` (a long
     * conversation forgets its oldest turns instead of failing).
     */
    contextOverflow: z.enum(["error", "truncate", "slide"]).optional(),
    /** Leading tokens truncation and sliding keep. Unset: BOS + system prompt, else 4 (at most half the context). */
    sinkTokens: z.coerce.number().int().min(1).optional(),
    /** Tokens dropped per slide. Unset: a quarter of the context. */
    slideTokens: z.coerce.number().int().min(1).optional(),
    /** KV cache element type; q8_0/q4_0 need flash attention and head sizes divisible by 32. */
    kvCacheType: z.enum(["f16", "q8_0", "q4_0"]).default("f16"),
    /** Requests that may wait for a free sequence; more get 429. */
    maxQueued: z.coerce.number().int().min(0).max(100_000).default(64),
    /** Largest accepted HTTP request body. */
    maxBodyBytes: z.coerce.number().int().min(1024).default(4 * 1024 * 1024),
    /** Largest accepted WebSocket frame. */
    maxWsFrameBytes: z.coerce.number().int().min(1024).default(1024 * 1024),
    /** "auto" uses Metal, CUDA or Vulkan when present; "cpu" never touches a GPU. */
    gpu: z.enum(["auto", "cpu"]).default("auto"),
    /**
     * "auto": on the CPU, measured with the thread count at a model's first load (off when threads
     * are set or not autotuned); llama.cpp's choice on a GPU. Quantized KV caches turn it on.
     */
    flashAttention: z.enum(["auto", "on", "off"]).default("auto"),
    logLevel: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info"),
    /** Seconds to wait for a model download to start before giving up (offline machines). */
    downloadTimeoutSeconds: z.coerce.number().min(1).max(3600).default(15),
    /** Tokens per KV block: the unit of accounting and of prefix matching. */
    kvBlockSize: z.coerce.number().int().min(4).max(1024).default(32),
    /**
     * KV memory for all sequences together, in tokens; sets the context per sequence
     * (budget / parallel) when ctxSize is not given.
     */
    kvBudgetTokens: z.coerce.number().int().min(64).optional(),
    /** The same budget in MiB of KV memory (converted with the model's KV bytes per token). */
    kvBudgetMiB: z.coerce.number().positive().optional(),
    /** Write idle sequences' KV to disk when their sequence is needed, and restore them on a match. */
    kvSpill: flag.default(true),
    kvSpillDir: z.string().min(1).default(".edge-llm/kv"),
    kvSpillBudgetMiB: z.coerce.number().positive().default(1024),
    /** Spilled states kept at most, whatever their size (least recently used go first). */
    kvSpillMaxStates: z.coerce.number().int().min(1).default(512),
    /**
     * How OpenMP threads of a local llama.cpp build wait between steps: "auto" spins briefly on AC
     * power, a short one on battery (checked at start-up), or "spin", "short-spin", "passive", "active".
     */
    waitPolicy: z.enum(["auto", "spin", "short-spin", "passive", "active"]).default("auto"),
    /** Save every cached conversation on shutdown so it survives a restart. */
    persistSessions: flag.default(false),
    /** A small model with the same tokenizer, drafting tokens for speculative decoding. */
    draft: z.string().min(1).optional(),
    /**
     * Speculative decoding for requests that do not choose: "draft" (the draft model), "prompt-lookup"
     * (n-grams of the prompt) or "off". Unset: "draft" when a draft model is given, else "off".
     */
    speculation: z.enum(["off", "prompt-lookup", "draft"]).optional(),
    /**
     * Model + context that do not fit in free memory: "shrink" lowers the context to what fits (with
     * a warning), "error" refuses to load, "off" skips the check. Never an out-of-memory crash by default.
     */
    memoryFit: z.enum(["shrink", "error", "off"]).default("shrink"),
    /** Memory the model may use at most, in MiB, even when more is free. Unset: whatever is free. */
    memoryLimitMiB: z.coerce.number().positive().optional(),
    /** Inference library: "llama.cpp" (GGUF, every platform) or "mlx" (Apple Silicon only, the optional @mlx-node/lm package, MLX model folders). */
    backend: z.enum(["llama.cpp", "mlx"]).default("llama.cpp"),
    /** Record of the local llama.cpp build scripts/build-backend.ts made; used instead of the prebuilt binary when present. */
    nativeBuildRecord: z.string().min(1).default(".edge-llm/native-build.json"),
    /**
     * "auto": where cmake and a C++ compiler exist and no build is recorded, `serve` builds llama.cpp
     * for this CPU in the background (the prebuilt binary serves meanwhile), measures it against the
     * prebuilt binary on the served model, and later starts load it if it was faster. "on": the same,
     * and a recorded build always loads. "off": no background build (a recorded one still loads).
     */
    nativeBuild: z.enum(["auto", "on", "off"]).default("auto"),
    /** Bearer token for /admin endpoints (power override); unset: they are disabled. */
    adminToken: z.string().min(16, {message: "use at least 16 characters"}).optional(),
    power: z.object({
        /** Poll thermal and battery sensors and throttle on them. */
        enabled: flag.default(true),
        /** Root of the sysfs tree to read (tests and demos point it at a fake one). */
        sensorRoot: z.string().min(1).default("/sys"),
        pollIntervalMs: z.coerce.number().int().min(100).max(60_000).default(1000),
        /** Force a level (apps that know better, demos); the admin endpoint can change it. */
        override: z.enum(["nominal", "fair", "serious", "critical"]).optional(),
        /** Level thresholds (°C, trip-point fraction, battery %, dwell, smoothing); see src/power/governor-policy.ts. */
        thresholds: z.record(z.string(), z.unknown()).optional(),
        /** Limits per level, overriding the defaults field by field; see src/power/limits.ts. */
        limits: powerLimitsSchema.optional()
    }).default({enabled: true, sensorRoot: "/sys", pollIntervalMs: 1000}),
    /**
     * More models clients may pick with `model`, by name: a GGUF path or `{path, draft}`. Every
     * *.gguf in `modelsDir` is available too, by its file name. Models load on first use.
     */
    models: z.record(z.string().min(1), z.union([
        z.string().min(1),
        z.object({path: z.string().min(1), draft: z.string().min(1).optional()})
    ])).optional(),
    /** Models kept loaded at once; another one replaces the least recently used idle one. */
    maxLoadedModels: z.coerce.number().int().min(1).max(64).default(1),
    /** Seconds a model loaded on demand stays loaded without requests; 0 = until replaced. The default model stays. */
    modelIdleTtlSeconds: z.coerce.number().min(0).max(30 * 24 * 3600).default(300),
    /** API keys clients must send (`Authorization: Bearer <key>`); unset: no key needed. Env: comma-separated. */
    apiKeys: stringList.optional(),
    /** A file of API keys, one per line (added to `apiKeys`). */
    apiKeyFile: z.string().min(1).optional(),
    /** Listen on a non-loopback address without API keys (anyone who can reach it may use it). */
    insecurePublic: flag.default(false),
    /** Browser origins allowed to call the API (CORS and WebSocket); "*" for any. Unset: none. */
    corsOrigins: stringList.optional(),
    /** Requests per minute per client (API key, else address) on /v1 and the WebSocket; unset: no limit. */
    rateLimitPerMinute: z.coerce.number().positive().optional(),
    /** Requests a client may make at once after being idle. Unset: a tenth of the per-minute rate, at least 1. */
    rateLimitBurst: z.coerce.number().int().min(1).optional(),
    /** On SIGTERM/SIGINT, streams in flight get this long to finish before they are ended (finish_reason "cancelled"). */
    shutdownGraceSeconds: z.coerce.number().min(0).max(3600).default(10)
});

export type Settings = z.infer<typeof settingsSchema>;
export type SettingsInput = z.input<typeof settingsSchema>;

/** Typed helper for `hono.config.ts`. */
export function defineConfig(config: SettingsInput): SettingsInput {
    return config;
}

/** Environment variables of settings nested in an object: name → [setting, field]. */
export const nestedSettingsEnv: Record<string, [keyof Settings, string]> = {
    EDGE_LLM_POWER: ["power", "enabled"],
    EDGE_LLM_SENSOR_ROOT: ["power", "sensorRoot"],
    EDGE_LLM_POWER_POLL_MS: ["power", "pollIntervalMs"],
    EDGE_LLM_POWER_OVERRIDE: ["power", "override"]
};

/** Environment variable for each top-level setting. */
export const settingsEnv: Partial<Record<keyof Settings, string>> = {
    model: "EDGE_LLM_MODEL",
    modelAlias: "EDGE_LLM_MODEL_ALIAS",
    modelsDir: "EDGE_LLM_MODELS_DIR",
    host: "EDGE_LLM_HOST",
    port: "EDGE_LLM_PORT",
    threads: "EDGE_LLM_THREADS",
    autotuneThreads: "EDGE_LLM_AUTOTUNE_THREADS",
    threadTuningFile: "EDGE_LLM_THREAD_TUNING_FILE",
    parallel: "EDGE_LLM_PARALLEL",
    ctxSize: "EDGE_LLM_CTX_SIZE",
    contextOverflow: "EDGE_LLM_CONTEXT_OVERFLOW",
    sinkTokens: "EDGE_LLM_SINK_TOKENS",
    slideTokens: "EDGE_LLM_SLIDE_TOKENS",
    kvCacheType: "EDGE_LLM_KV_CACHE_TYPE",
    maxQueued: "EDGE_LLM_MAX_QUEUED",
    maxBodyBytes: "EDGE_LLM_MAX_BODY_BYTES",
    maxWsFrameBytes: "EDGE_LLM_MAX_WS_FRAME_BYTES",
    gpu: "EDGE_LLM_GPU",
    flashAttention: "EDGE_LLM_FLASH_ATTENTION",
    logLevel: "EDGE_LLM_LOG_LEVEL",
    downloadTimeoutSeconds: "EDGE_LLM_DOWNLOAD_TIMEOUT",
    kvBlockSize: "EDGE_LLM_KV_BLOCK_SIZE",
    kvBudgetTokens: "EDGE_LLM_KV_BUDGET_TOKENS",
    kvBudgetMiB: "EDGE_LLM_KV_BUDGET_MIB",
    kvSpill: "EDGE_LLM_KV_SPILL",
    kvSpillDir: "EDGE_LLM_KV_SPILL_DIR",
    kvSpillBudgetMiB: "EDGE_LLM_KV_SPILL_BUDGET_MIB",
    kvSpillMaxStates: "EDGE_LLM_KV_SPILL_MAX_STATES",
    waitPolicy: "EDGE_LLM_WAIT_POLICY",
    persistSessions: "EDGE_LLM_PERSIST_SESSIONS",
    adminToken: "EDGE_LLM_ADMIN_TOKEN",
    draft: "EDGE_LLM_DRAFT",
    speculation: "EDGE_LLM_SPECULATION",
    maxLoadedModels: "EDGE_LLM_MAX_LOADED_MODELS",
    modelIdleTtlSeconds: "EDGE_LLM_MODEL_IDLE_TTL",
    memoryFit: "EDGE_LLM_MEMORY_FIT",
    memoryLimitMiB: "EDGE_LLM_MEMORY_LIMIT_MIB",
    nativeBuildRecord: "EDGE_LLM_NATIVE_BUILD_RECORD",
    nativeBuild: "EDGE_LLM_NATIVE_BUILD",
    backend: "EDGE_LLM_BACKEND",
    apiKeys: "EDGE_LLM_API_KEYS",
    apiKeyFile: "EDGE_LLM_API_KEY_FILE",
    insecurePublic: "EDGE_LLM_INSECURE_PUBLIC",
    corsOrigins: "EDGE_LLM_CORS_ORIGINS",
    rateLimitPerMinute: "EDGE_LLM_RATE_LIMIT",
    rateLimitBurst: "EDGE_LLM_RATE_LIMIT_BURST",
    shutdownGraceSeconds: "EDGE_LLM_SHUTDOWN_GRACE"
};
