import {describe, expect, it} from "vitest";
import {defaultPowerLimits, mergePowerLimits, powerLimitsSchema, resolveThreads, toEngineLimits, type PowerLimits} from "./limits.js";
import {POWER_LEVELS} from "./types.js";

const uncapped = (value: number | undefined) => value ?? Infinity;

describe("power limits", () => {
    it("get stricter (or stay equal) on every limit at each hotter level", () => {
        for (let i = 1; i < POWER_LEVELS.length; i++) {
            const cooler = defaultPowerLimits[POWER_LEVELS[i - 1]!];
            const hotter = defaultPowerLimits[POWER_LEVELS[i]!];
            for (const configured of [1, 2, 3, 4, 6, 8, 16])
                expect(resolveThreads(hotter.threads, configured)).toBeLessThanOrEqual(resolveThreads(cooler.threads, configured));
            for (const key of ["maxConcurrent", "tokensPerSecond", "maxTokens"] as const)
                expect(uncapped(hotter[key]), `${POWER_LEVELS[i]} ${key}`).toBeLessThanOrEqual(uncapped(cooler[key]));
            expect(!hotter.speculative || cooler.speculative).toBe(true);
            expect(!cooler.refuseNewRequests || hotter.refuseNewRequests).toBe(true);
        }
        expect(defaultPowerLimits.nominal).toEqual({speculative: true, refuseNewRequests: false});
        expect(defaultPowerLimits.critical).toMatchObject({refuseNewRequests: true, retryAfterSeconds: 30});
    });

    it("resolves thread limits against the configured count", () => {
        expect(resolveThreads(undefined, 6)).toBe(6);
        expect(resolveThreads("half", 6)).toBe(3);
        expect(resolveThreads("half", 3)).toBe(1);
        expect(resolveThreads("half", 1)).toBe(1);
        expect(resolveThreads(2, 8)).toBe(2);
        expect(resolveThreads(16, 4)).toBe(4);
        expect(resolveThreads(0, 4)).toBe(1);
    });

    it("parses partial overrides and lays them over the defaults", () => {
        const overrides = powerLimitsSchema.parse({serious: {tokensPerSecond: null, threads: "2"}, critical: {retryAfterSeconds: 60}});
        const merged = mergePowerLimits(overrides);
        expect(merged.serious).toEqual({...defaultPowerLimits.serious, threads: 2, tokensPerSecond: undefined});
        expect("tokensPerSecond" in merged.serious).toBe(false);
        expect(merged.critical.retryAfterSeconds).toBe(60);
        expect(merged.fair).toEqual(defaultPowerLimits.fair);
        expect(merged.serious.threads).toBe(2);
        expect(powerLimitsSchema.parse({fair: {threads: "half"}}).fair?.threads).toBe("half");
        expect(powerLimitsSchema.parse({})).toEqual({});
    });

    it("rejects unknown levels, unknown fields and bad values", () => {
        expect(powerLimitsSchema.safeParse({hot: {}}).success).toBe(false);
        expect(powerLimitsSchema.safeParse({fair: {thread: 2}}).success).toBe(false);
        expect(powerLimitsSchema.safeParse({fair: {threads: 0}}).success).toBe(false);
        expect(powerLimitsSchema.safeParse({fair: {threads: "quarter"}}).success).toBe(false);
        expect(powerLimitsSchema.safeParse({fair: {tokensPerSecond: -1}}).success).toBe(false);
    });

    it("translate into the engine's limits", () => {
        expect(toEngineLimits(defaultPowerLimits.nominal, 4, "nominal")).toEqual({speculative: true});
        const critical: PowerLimits = defaultPowerLimits.critical;
        expect(toEngineLimits(critical, 4, "critical")).toMatchObject({threads: 1, maxConcurrent: 1, tokensPerSecond: 4, maxTokens: 256, speculative: false,
            refuse: {retryAfterSeconds: 30}});
        expect(toEngineLimits(defaultPowerLimits.serious, 8, "serious").threads).toBe(4);
    });
});
