import {describe, expect, it} from "vitest";
import {applyWaitPolicy, chooseWaitPolicy, SHORT_SPIN_COUNT, SPIN_COUNT} from "./wait-policy.js";

describe("OpenMP wait policy", () => {
    it("auto: a bounded spin on AC power or without a battery, a short one on battery or in low-power mode", () => {
        expect(chooseWaitPolicy({setting: "auto", onBattery: false, env: {}})).toMatchObject({policy: "spin", env: {GOMP_SPINCOUNT: String(SPIN_COUNT)}});
        expect(chooseWaitPolicy({setting: "auto", env: {}})).toMatchObject({policy: "spin", reason: expect.stringContaining("no battery")});
        expect(chooseWaitPolicy({setting: "auto", onBattery: true, env: {}})).toMatchObject({policy: "short-spin", env: {GOMP_SPINCOUNT: String(SHORT_SPIN_COUNT)}});
        expect(chooseWaitPolicy({setting: "auto", onBattery: false, lowPowerMode: true, env: {}})).toMatchObject({policy: "short-spin"});
    });

    it("an explicit setting wins over the power state, and the user's own environment over both", () => {
        expect(chooseWaitPolicy({setting: "spin", onBattery: true, env: {}}).policy).toBe("spin");
        expect(chooseWaitPolicy({setting: "active", env: {}})).toMatchObject({policy: "active", env: {OMP_WAIT_POLICY: "active"}});
        expect(chooseWaitPolicy({setting: "passive", env: {GOMP_SPINCOUNT: "5"}})).toMatchObject({policy: "environment", env: {}});
        expect(chooseWaitPolicy({setting: "auto", env: {OMP_WAIT_POLICY: "active"}}).policy).toBe("environment");
    });

    it("applies the chosen variables to the environment given", () => {
        const env: NodeJS.ProcessEnv = {};
        applyWaitPolicy(chooseWaitPolicy({setting: "passive", env}), env);
        expect(env).toEqual({OMP_WAIT_POLICY: "passive"});
    });
});
