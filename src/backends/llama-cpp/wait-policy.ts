/**
 * How OpenMP worker threads wait between llama.cpp's parallel regions, in builds that use
 * OpenMP (the cpu-native build). libgomp reads `OMP_WAIT_POLICY` and `GOMP_SPINCOUNT` once, when
 * the library is loaded, so the choice is made before the binary loads and holds for the process.
 *
 * Measured in docs/performance.md: sleeping at once ("passive") makes every token pay the
 * wake-ups; spinning forever ("active") is fastest but burns every core even while idle. A
 * bounded spin long enough to cover the gap between two decode calls gets active's speed while
 * generating and sleeps when nothing is generating. On battery (or in a low-power mode) the
 * spin itself costs energy per token, so the threads sleep.
 */

export type WaitPolicySetting = "auto" | "spin" | "passive" | "default";

export interface WaitPolicyChoice {
    policy: "spin" | "passive" | "default" | "environment";
    /** Variables to set before the binary loads; empty when nothing is set. */
    env: Record<string, string>;
    reason: string;
}

/**
 * Spins of libgomp's wait loop before a worker sleeps. About 6 ms here — twice the longest gap
 * between decode calls measured on the 1B-shaped model's streaming path — and a sleeping
 * thread between requests. (libgomp's default, 300,000, is about 0.2 ms.)
 */
export const BOUNDED_SPIN_COUNT = 10_000_000;

export interface WaitPolicyInput {
    setting: WaitPolicySetting;
    /** From the power sensors at start-up: undefined when unknown (no battery, no sensor). */
    onBattery?: boolean;
    lowPowerMode?: boolean;
    env?: NodeJS.ProcessEnv;
}

export function chooseWaitPolicy({setting, onBattery, lowPowerMode, env = process.env}: WaitPolicyInput): WaitPolicyChoice {
    if (env.OMP_WAIT_POLICY != null || env.GOMP_SPINCOUNT != null)
        return {policy: "environment", env: {}, reason: "OMP_WAIT_POLICY / GOMP_SPINCOUNT set in the environment"};
    if (setting === "default") return {policy: "default", env: {}, reason: "libgomp's default (waitPolicy \"default\")"};
    if (setting === "passive") return {policy: "passive", env: {OMP_WAIT_POLICY: "passive"}, reason: "waitPolicy \"passive\""};
    if (setting === "spin") return {policy: "spin", env: {GOMP_SPINCOUNT: String(BOUNDED_SPIN_COUNT)}, reason: "waitPolicy \"spin\""};
    if (onBattery === true || lowPowerMode === true)
        return {policy: "passive", env: {OMP_WAIT_POLICY: "passive"}, reason: `${onBattery === true ? "on battery" : "low-power mode"} at start-up: threads sleep between steps`};
    return {
        policy: "spin", env: {GOMP_SPINCOUNT: String(BOUNDED_SPIN_COUNT)},
        reason: `${onBattery === false ? "on AC power" : "no battery"} at start-up: threads spin briefly between steps, sleep when idle`
    };
}

/** Sets the chosen variables in this process; call before the OpenMP binary loads. */
export function applyWaitPolicy(choice: WaitPolicyChoice, env: NodeJS.ProcessEnv = process.env) {
    for (const [name, value] of Object.entries(choice.env)) env[name] = value;
}
