import type {Runtime} from "../runtime/runtime.js";
import {PowerGovernor, type PowerState} from "./governor.js";
import type {GovernorThresholdsInput} from "./governor-policy.js";
import {mergePowerLimits, toEngineLimits, type PowerLimitsOverrides} from "./limits.js";
import {detectSensors, mergeReadings} from "./sensors/index.js";
import type {PowerStatus, PowerView} from "./status.js";
import type {PowerLevel, PowerSensor} from "./types.js";

export interface PowerServiceOptions {
    /** The runtime, or the model pool (which passes the limits to every model it loads). */
    runtime: Pick<Runtime, "setLimits" | "health">;
    /** Sysfs root to read; unset: this platform's sensors. */
    sensorRoot?: string;
    pollIntervalMs?: number;
    /** A level forced from the start (config). */
    override?: PowerLevel;
    thresholds?: GovernorThresholdsInput;
    limits?: PowerLimitsOverrides;
    /** Replaces sensor detection (tests, other hardware). */
    sensors?: PowerSensor[];
    onChange?: (status: PowerStatus, previous: PowerLevel) => void;
    onError?: (error: unknown, where: string) => void;
}

/**
 * Connects the governor to the engine: every level change becomes `Runtime.setLimits()`, and
 * transports see it through `PowerView`. The engine never learns why it is limited.
 */
export class PowerService implements PowerView {
    private readonly governor: PowerGovernor;
    private readonly listeners = new Set<(status: PowerStatus) => void>();

    constructor(private readonly options: PowerServiceOptions) {
        this.governor = new PowerGovernor({
            sensors: options.sensors ?? detectSensors({sensorRoot: options.sensorRoot}),
            pollIntervalMs: options.pollIntervalMs,
            thresholds: options.thresholds,
            limits: mergePowerLimits(options.limits),
            // No sensor answered: no reading at all, so the level stays where the policy has it.
            merge: (readings) => (readings.length > 0 ? mergeReadings(readings) : undefined),
            override: options.override ?? null,
            onError: options.onError
        });
        this.governor.onChange((change) => {
            this.apply();
            const status = this.status();
            options.onChange?.(status, change.previous);
            for (const listener of this.listeners) {
                try {
                    listener(status);
                } catch (error) {
                    options.onError?.(error, "power listener");
                }
            }
        });
        this.apply();
    }

    start() {
        this.governor.start();
        return this;
    }

    stop() {
        this.governor.stop();
    }

    /** Polls once now (tests and demos drive the governor with it). */
    async poll(): Promise<PowerStatus> {
        await this.governor.pollOnce();
        return this.status();
    }

    /** Re-applies the current level's limits, e.g. once the model (and its thread count) is loaded. */
    apply() {
        const state = this.governor.current();
        this.options.runtime.setLimits(toEngineLimits(state.limits, this.configuredThreads(), state.level));
    }

    status(): PowerStatus {
        return toStatus(this.governor.current(), this.options.runtime.health().limits);
    }

    subscribe(listener: (status: PowerStatus) => void): () => void {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
    }

    setOverride(level: PowerLevel | null) {
        this.governor.setOverride(level);
    }

    private configuredThreads() {
        return this.options.runtime.health().model?.threads ?? 1;
    }
}

function toStatus(state: PowerState, limits: PowerStatus["limits"]): PowerStatus {
    const status: PowerStatus = {level: state.level, reason: state.reason, since: state.since, override: state.override, limits};
    if (state.reading != null) status.reading = state.reading;
    if (state.lastPollMs != null) status.pollMs = {last: round(state.lastPollMs), average: round(state.averagePollMs ?? state.lastPollMs)};
    return status;
}

function round(value: number) {
    return Math.round(value * 1000) / 1000;
}
