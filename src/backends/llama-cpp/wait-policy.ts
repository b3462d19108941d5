/**
 * How OpenMP worker threads wait at llama.cpp's barriers (hundreds per token) and between
 * decode calls, in builds that use OpenMP (the cpu-native build). libgomp reads
 * `OMP_WAIT_POLICY` and `GOMP_SPINCOUNT` once, when the library loads, so the choice is made
 * before the binary loads and holds for the process.
 *
 * Measured in docs/performance.md (1B-shaped Q4_0, 2 threads, one libuv pool thread): sleeping at
 * once ("passive") is ~30% slower *and* costs more CPU time per token (futex wake-ups); spinning
 * forever ("active") is no faster than a bounded spin and burns a core while idle. A bounded spin
 * (libgomp's 300,000 spins, a few ms here) covers the barriers and the gap between tokens and
 * then sleeps. On battery the spin is cut to a tenth, so an idle server stops spinning sooner.
 */

export type WaitPolicySetting = "auto" | "spin" | "short-spin" | "passive" | "active";

export interface WaitPolicyChoice {
    policy: Exclude<WaitPolicySetting, "auto"> | "environment";
    /** Variables to set before the binary loads; empty when nothing is set. */
    env: Record<string, string>;
    reason: string;
}

/** libgomp's own default spin count, set explicitly so the choice is visible. */
export const SPIN_COUNT = 300_000;
/** On battery or in a low-power mode. */
export const SHORT_SPIN_COUNT = 30_000;

export interface WaitPolicyInput {
    setting: WaitPolicySetting;
    /** From the power sensors at start-up: undefined when unknown (no battery, no sensor). */
    onBattery?: boolean;
    lowPowerMode?: boolean;
    env?: NodeJS.ProcessEnv;
}

const fixed: Record<Exclude<WaitPolicySetting, "auto">, Record<string, string>> = {
    "spin": {GOMP_SPINCOUNT: String(SPIN_COUNT)},
    "short-spin": {GOMP_SPINCOUNT: String(SHORT_SPIN_COUNT)},
    "passive": {OMP_WAIT_POLICY: "passive"},
    "active": {OMP_WAIT_POLICY: "active"}
};

export function chooseWaitPolicy({setting, onBattery, lowPowerMode, env = process.env}: WaitPolicyInput): WaitPolicyChoice {
    if (env.OMP_WAIT_POLICY != null || env.GOMP_SPINCOUNT != null)
        return {policy: "environment", env: {}, reason: "OMP_WAIT_POLICY / GOMP_SPINCOUNT set in the environment"};
    if (setting !== "auto") return {policy: setting, env: {...fixed[setting]}, reason: `waitPolicy "${setting}"`};
    if (onBattery === true || lowPowerMode === true)
        return {policy: "short-spin", env: {...fixed["short-spin"]}, reason: `${onBattery === true ? "on battery" : "low-power mode"} at start-up: a short spin, then sleep`};
    return {policy: "spin", env: {...fixed.spin}, reason: `${onBattery === false ? "on AC power" : "no battery"} at start-up: a bounded spin, then sleep`};
}

/** Sets the chosen variables in this process; call before the OpenMP binary loads. */
export function applyWaitPolicy(choice: WaitPolicyChoice, env: NodeJS.ProcessEnv = process.env) {
    for (const [name, value] of Object.entries(choice.env)) env[name] = value;
}
