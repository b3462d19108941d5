import {z} from "zod";
import type {EngineLimits} from "../runtime/runtime.js";
import {POWER_LEVELS, type PowerLevel} from "./types.js";

/** What the engine is allowed at one power level. A field left unset does not limit. */
export interface PowerLimits {
    /** Decode threads: a count (never above the configured one) or "half" of the configured count (rounded down, at least 1). */
    threads?: number | "half";
    /** Requests decoded at once; the rest wait in the queue. */
    maxConcurrent?: number;
    /** Pacing cap per stream: the decoder idles between tokens. Unset: uncapped. */
    tokensPerSecond?: number;
    /** Speculative decoding allowed (it spends extra compute on drafts to cut latency). */
    speculative: boolean;
    /** Cap on each request's max_tokens. */
    maxTokens?: number;
    /** New requests get 503 + Retry-After; streams in flight go on under the other limits. */
    refuseNewRequests: boolean;
    /** Retry-After for refused requests, in seconds. */
    retryAfterSeconds?: number;
}

/**
 * Defaults, for a 1B–7B model on a phone (1B decodes at ~20–40 tok/s there, 7B at ~4–8; people
 * read ~4–6 tok/s). What heats a phone is CPU time, so each level cuts it harder:
 * - nominal: nothing.
 * - fair: speculative off (drafts are extra compute for the same tokens), at most 2 requests at
 *   once, 20 tok/s per stream — still well above reading speed, it only trims a small model's
 *   bursts. Barely noticeable.
 * - serious: half the threads (decode is memory-bound, so it loses far less than half its speed,
 *   while prompt processing stays bearable, unlike with one thread), one request at a time,
 *   8 tok/s (about reading speed), answers capped at 512 tokens.
 * - critical: no new requests (503, Retry-After 30 s — cooling down takes tens of seconds);
 *   streams in flight finish on 1 thread at 4 tok/s, at most 256 tokens.
 */
export const defaultPowerLimits: Record<PowerLevel, PowerLimits> = {
    nominal: {speculative: true, refuseNewRequests: false},
    fair: {maxConcurrent: 2, tokensPerSecond: 20, speculative: false, refuseNewRequests: false},
    serious: {threads: "half", maxConcurrent: 1, tokensPerSecond: 8, speculative: false, maxTokens: 512, refuseNewRequests: false},
    critical: {threads: 1, maxConcurrent: 1, tokensPerSecond: 4, speculative: false, maxTokens: 256, refuseNewRequests: true, retryAfterSeconds: 30}
};

/** Threads to use under `limit`, given the count configured (or chosen) for the model. */
export function resolveThreads(limit: PowerLimits["threads"], configuredThreads: number): number {
    const configured = Math.max(1, Math.floor(configuredThreads));
    if (limit == null) return configured;
    if (limit === "half") return Math.max(1, Math.floor(configured / 2));
    return Math.max(1, Math.min(configured, Math.floor(limit)));
}

/** The limits in the engine's terms (`Runtime`'s `EngineLimits`). */
export function toEngineLimits(limits: PowerLimits, configuredThreads: number, level: PowerLevel): EngineLimits {
    const engine: EngineLimits = {speculative: limits.speculative};
    if (limits.threads != null) engine.threads = resolveThreads(limits.threads, configuredThreads);
    if (limits.maxConcurrent != null) engine.maxConcurrent = limits.maxConcurrent;
    if (limits.tokensPerSecond != null) engine.tokensPerSecond = limits.tokensPerSecond;
    if (limits.maxTokens != null) engine.maxTokens = limits.maxTokens;
    if (limits.refuseNewRequests)
        engine.refuse = {message: `The device is ${level === "critical" ? "critically hot or low on power" : `at power level ${level}`}; new requests are refused for now.`,
            retryAfterSeconds: limits.retryAfterSeconds ?? 30};
    return engine;
}

const positiveInt = z.coerce.number().int().min(1);
/** null in an override removes that limit (e.g. `serious: {tokensPerSecond: null}` = uncapped). */
const levelOverridesSchema = z.strictObject({
    threads: z.union([z.literal("half"), positiveInt]).nullable().optional(),
    maxConcurrent: positiveInt.nullable().optional(),
    tokensPerSecond: z.coerce.number().positive().nullable().optional(),
    speculative: z.boolean().optional(),
    maxTokens: positiveInt.nullable().optional(),
    refuseNewRequests: z.boolean().optional(),
    retryAfterSeconds: positiveInt.max(3600).nullable().optional()
});

/** User overrides of `defaultPowerLimits`, any level, any field; for the settings schema. */
export const powerLimitsSchema = z.strictObject({
    nominal: levelOverridesSchema.optional(),
    fair: levelOverridesSchema.optional(),
    serious: levelOverridesSchema.optional(),
    critical: levelOverridesSchema.optional()
});
export type PowerLimitsOverrides = z.infer<typeof powerLimitsSchema>;

/** The defaults (or `base`) with `overrides` laid over them, field by field. */
export function mergePowerLimits(overrides: PowerLimitsOverrides = {}, base = defaultPowerLimits): Record<PowerLevel, PowerLimits> {
    const merged = {} as Record<PowerLevel, PowerLimits>;
    for (const level of POWER_LEVELS) {
        const limits: PowerLimits = {...base[level]};
        for (const [key, value] of Object.entries(overrides[level] ?? {})) {
            if (value === null) delete (limits as unknown as Record<string, unknown>)[key];
            else if (value !== undefined) (limits as unknown as Record<string, unknown>)[key] = value;
        }
        merged[level] = limits;
    }
    return merged;
}
