import {LevelPolicy, type GovernorThresholdsInput, type LevelDecision, type SmoothedSignals} from "./governor-policy.js";
import {defaultPowerLimits, type PowerLimits} from "./limits.js";
import type {PowerLevel, PowerReading, PowerSensor} from "./types.js";

export interface PowerGovernorOptions {
    /** Where readings come from; none at all keeps the level `nominal`. */
    sensors: readonly PowerSensor[];
    /** Delay between the end of one poll and the start of the next, in ms. Default 1000. */
    pollIntervalMs?: number;
    /** A sensor read that takes longer counts as no reading (a hung helper must not freeze the level), in ms. Default 2000. */
    sensorTimeoutMs?: number;
    /** Level thresholds, smoothing and dwell; see `GovernorThresholds`. Default `defaultGovernorThresholds`. */
    thresholds?: GovernorThresholdsInput;
    /** Limits per level. Default `defaultPowerLimits` (see `mergePowerLimits` for user overrides). */
    limits?: Record<PowerLevel, PowerLimits>;
    /** Combines one poll's readings into one. Default: the first sensor's reading that is there. */
    merge?: (readings: PowerReading[]) => PowerReading | undefined;
    /** Clock for the policy (dwell, smoothing), Unix ms. Default `Date.now`. */
    now?: () => number;
    /** Level forced from the start (config), as with `setOverride`. Default null. */
    override?: PowerLevel | null;
    /** Told about sensors that threw or timed out and listeners that threw. Default: ignored. */
    onError?: (error: unknown, where: string) => void;
}

export interface PowerState {
    level: PowerLevel;
    /** The signal that decided the level, in words. */
    reason: string;
    /** Unix ms when the level was entered. */
    since: number;
    override: PowerLevel | null;
    /** The last poll's merged reading; undefined when no sensor reported. */
    reading?: PowerReading;
    smoothed: SmoothedSignals;
    limits: PowerLimits;
    /** Wall time of the last poll and its exponential average (~10 polls), in ms. */
    lastPollMs?: number;
    averagePollMs?: number;
}

export interface PowerChange {
    level: PowerLevel;
    previous: PowerLevel;
    reason: string;
    reading?: PowerReading;
    limits: PowerLimits;
}

/** Default merge: the first reading any sensor gave (sensors are listed in order of trust). */
export const firstReading = (readings: PowerReading[]): PowerReading | undefined => readings[0];

class SensorTimeoutError extends Error {
    constructor(sensor: string, ms: number) {
        super(`power sensor "${sensor}" did not answer within ${ms} ms`);
    }
}

/**
 * Polls the sensors (one poll at a time, `pollIntervalMs` after the previous one ended), feeds
 * the merged reading to a `LevelPolicy` and announces level changes. Never keeps the process
 * alive: its timer is unref'd.
 */
export class PowerGovernor {
    private readonly policy: LevelPolicy;
    private readonly listeners = new Set<(change: PowerChange) => void>();
    private readonly now: () => number;
    private readonly limitsByLevel: Record<PowerLevel, PowerLimits>;
    private readonly merge: (readings: PowerReading[]) => PowerReading | undefined;
    private state: PowerState;
    private timer?: NodeJS.Timeout;
    private running = false;
    private inFlight?: Promise<PowerState>;

    constructor(private readonly options: PowerGovernorOptions) {
        const interval = options.pollIntervalMs ?? 1000;
        if (!(interval > 0)) throw new RangeError(`pollIntervalMs must be > 0, got ${interval}`);
        this.now = options.now ?? Date.now;
        this.merge = options.merge ?? firstReading;
        this.limitsByLevel = options.limits ?? defaultPowerLimits;
        this.policy = new LevelPolicy(options.thresholds, this.now());
        const decision = options.override != null ? this.policy.setOverride(options.override, this.now()) : this.policy.current();
        this.state = {level: decision.level, reason: decision.reason, since: decision.since, override: options.override ?? null,
            smoothed: decision.smoothed, limits: this.limitsByLevel[decision.level]};
    }

    current(): PowerState {
        return this.state;
    }

    /** Called on every level change; returns the unsubscribe function. */
    onChange(listener: (change: PowerChange) => void): () => void {
        this.listeners.add(listener);
        return () => this.listeners.delete(listener);
    }

    /** Polls now and then every `pollIntervalMs` until `stop()`. */
    start() {
        if (this.running) return;
        this.running = true;
        void this.loop();
    }

    stop() {
        this.running = false;
        clearTimeout(this.timer);
        this.timer = undefined;
    }

    /** One poll: read every sensor, merge, decide. Concurrent calls share the poll in flight. */
    pollOnce(): Promise<PowerState> {
        this.inFlight ??= this.poll().finally(() => (this.inFlight = undefined));
        return this.inFlight;
    }

    /** Forces a level (the admin endpoint), or hands it back to the sensors with null. Applies at once. */
    setOverride(level: PowerLevel | null) {
        this.state = {...this.state, override: level};
        this.apply(this.policy.setOverride(level, this.now()));
    }

    private async loop() {
        await this.pollOnce();
        if (!this.running || this.timer != null) return;
        this.timer = setTimeout(() => {
            this.timer = undefined;
            void this.loop();
        }, this.options.pollIntervalMs ?? 1000);
        this.timer.unref();
    }

    private async poll(): Promise<PowerState> {
        const started = performance.now();
        const results = await Promise.all(this.options.sensors.map((sensor) => this.read(sensor)));
        let reading: PowerReading | undefined;
        try {
            reading = this.merge(results.filter((result): result is PowerReading => result != null));
        } catch (error) {
            this.options.onError?.(error, "merge");
        }
        const cost = performance.now() - started;
        const now = this.now();
        const average = this.state.averagePollMs == null ? cost : this.state.averagePollMs + 0.1 * (cost - this.state.averagePollMs);
        this.state = {...this.state, reading, lastPollMs: cost, averagePollMs: average};
        this.apply(this.policy.update(reading ?? {at: now, source: "none"}, now));
        return this.state;
    }

    private async read(sensor: PowerSensor): Promise<PowerReading | undefined> {
        const ms = this.options.sensorTimeoutMs ?? 2000;
        let timeout: NodeJS.Timeout | undefined;
        try {
            return await Promise.race([
                sensor.read(),
                new Promise<never>((_, reject) => {
                    timeout = setTimeout(() => reject(new SensorTimeoutError(sensor.name, ms)), ms);
                    timeout.unref();
                })
            ]);
        } catch (error) {
            this.options.onError?.(error, `sensor ${sensor.name}`);
            return undefined;
        } finally {
            clearTimeout(timeout);
        }
    }

    private apply(decision: LevelDecision) {
        const previous = this.state.level;
        const limits = this.limitsByLevel[decision.level];
        this.state = {...this.state, level: decision.level, reason: decision.reason, since: decision.since, smoothed: decision.smoothed, limits};
        if (decision.level === previous) return;
        const change: PowerChange = {level: decision.level, previous, reason: decision.reason, reading: this.state.reading, limits};
        for (const listener of [...this.listeners]) {
            try {
                listener(change);
            } catch (error) {
                this.options.onError?.(error, "change listener");
            }
        }
    }
}
