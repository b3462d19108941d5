import {POWER_LEVELS, type PowerLevel, type PowerReading} from "./types.js";

/**
 * Maps readings to a level. Pure: time comes in with each call, nothing is scheduled.
 *
 * Each signal keeps its own level with hysteresis (entered when its `enter` threshold is
 * crossed, left only once it is back past `exit`); the target is the hottest signal. The level
 * follows the target up at once (safety first) but down only after the target has stayed lower
 * for `minDwellMs`, and then one level at a time, each step waiting a fresh dwell: the load
 * comes back gradually, so a device that just cooled is not heated straight back up by full
 * speed. A forced level (manual override) applies at once both ways; clearing it returns to
 * the target at once.
 */
export type HotLevel = Exclude<PowerLevel, "nominal">;
export interface Band {
    enter: number;
    exit: number;
}
export type LevelBands = Record<HotLevel, Band>;

export interface GovernorThresholds {
    /**
     * Hottest zone, smoothed, in °C: entered at `temperature >= enter`, held while `>= exit`.
     * Default fair 70/65, serious 80/75, critical 90/85: skin-hot territory on a phone, and well
     * before most SoCs' own passive trip points (~95 °C) make the kernel throttle hard.
     */
    temperatureCelsius: LevelBands;
    /**
     * Which zones `temperatureCelsius` looks at. "without-trip" (default): only zones with no trip
     * point, leaving the others to `tripFraction` — the hardware's own idea of hot; laptop and
     * desktop CPU packages run at 85–95 °C under load by design and would otherwise be throttled
     * for doing their job. "all": every zone, the most cautious choice.
     */
    absoluteZones: "all" | "without-trip";
    /**
     * Hottest `celsius / tripCelsius` over zones with a trip point, smoothed. Default fair
     * 0.85/0.80, serious 0.92/0.88, critical 0.97/0.94: for a 95 °C trip that is 81, 87 and 92 °C;
     * for a 45 °C battery trip 38, 41 and 44 °C.
     */
    tripFraction: LevelBands;
    /**
     * Battery percent while discharging: entered at `percent <= enter`, held while `<= exit`.
     * Default fair 30/35, serious 15/20, critical 5/8. Plugging in ends it (after the dwell).
     */
    batteryPercent: LevelBands;
    /** The OS's low-power mode puts the level at least here; null ignores it. Default "fair". */
    lowPowerModeLevel: PowerLevel | null;
    /** The OS's own thermal level (macOS, Android) is a floor for ours. Default true. */
    followOsThermalLevel: boolean;
    /**
     * A smoothed CPU frequency ratio below `below` puts the level at least at `level`.
     * Default null (off): an idle CPU clocks down too, and the governor cannot tell idle from
     * throttled, so on by default it would throttle for nothing.
     */
    cpuFrequency: {below: number; level: HotLevel} | null;
    /**
     * Half-life of the exponential moving average over temperature, trip fraction and CPU
     * frequency, in ms; 0 turns smoothing off. Default 4000: with 1 s polls one sample weighs
     * 16%, so a one-poll spike of 35 °C moves the average by under 6 °C, while a real rise shows
     * within seconds — far faster than a phone's case heats up.
     */
    smoothingHalfLifeMs: number;
    /** How long the target must stay below the level before each step down, in ms. Default 10 000. */
    minDwellMs: number;
}

export const defaultGovernorThresholds = {
    temperatureCelsius: {fair: {enter: 70, exit: 65}, serious: {enter: 80, exit: 75}, critical: {enter: 90, exit: 85}},
    absoluteZones: "without-trip",
    tripFraction: {fair: {enter: 0.85, exit: 0.8}, serious: {enter: 0.92, exit: 0.88}, critical: {enter: 0.97, exit: 0.94}},
    batteryPercent: {fair: {enter: 30, exit: 35}, serious: {enter: 15, exit: 20}, critical: {enter: 5, exit: 8}},
    lowPowerModeLevel: "fair",
    followOsThermalLevel: true,
    cpuFrequency: null,
    smoothingHalfLifeMs: 4000,
    minDwellMs: 10_000
} satisfies Required<GovernorThresholds>;

/** Thresholds as options: anything left out keeps its default, bands level by level. */
export type GovernorThresholdsInput = {
    [K in keyof GovernorThresholds]?: GovernorThresholds[K] extends LevelBands ? Partial<LevelBands> : GovernorThresholds[K];
};

export interface SmoothedSignals {
    temperatureCelsius?: number;
    tripFraction?: number;
    cpuFrequencyRatio?: number;
}

export interface LevelDecision {
    level: PowerLevel;
    /** What the signals ask for now; below `level` while a step down waits out the dwell. */
    target: PowerLevel;
    /** The signal behind the level, in words, e.g. "temperature 82.4 °C ≥ 80 (serious)". */
    reason: string;
    smoothed: SmoothedSignals;
    /** When `level` was entered. */
    since: number;
    /** The manual override or a reading's `forcedLevel`, when one is in force. */
    forced: PowerLevel | null;
}

const HOT_LEVELS: readonly HotLevel[] = ["critical", "serious", "fair"];
export const levelRank = (level: PowerLevel) => POWER_LEVELS.indexOf(level);
const NOMINAL: Signal = {level: "nominal", reason: "no signal above nominal"};

interface Signal {
    level: PowerLevel;
    reason: string;
}

export function resolveThresholds(input: GovernorThresholdsInput = {}): GovernorThresholds {
    const d = defaultGovernorThresholds;
    const t: GovernorThresholds = {
        ...d,
        ...input,
        temperatureCelsius: {...d.temperatureCelsius, ...input.temperatureCelsius},
        tripFraction: {...d.tripFraction, ...input.tripFraction},
        batteryPercent: {...d.batteryPercent, ...input.batteryPercent}
    };
    checkBands("temperatureCelsius", t.temperatureCelsius, "above");
    checkBands("tripFraction", t.tripFraction, "above");
    checkBands("batteryPercent", t.batteryPercent, "below");
    if (!(t.smoothingHalfLifeMs >= 0) || !(t.minDwellMs >= 0)) throw new RangeError("smoothingHalfLifeMs and minDwellMs must be ≥ 0");
    return t;
}

function checkBands(name: string, bands: LevelBands, worse: "above" | "below") {
    const sign = worse === "above" ? 1 : -1;
    let previous = -Infinity;
    for (const level of ["fair", "serious", "critical"] as const) {
        const {enter, exit} = bands[level];
        if (!Number.isFinite(enter) || !Number.isFinite(exit) || sign * (enter - exit) < 0)
            throw new RangeError(`${name}.${level}: exit (${exit}) must be on the cooler side of enter (${enter})`);
        if (sign * enter < previous) throw new RangeError(`${name}.${level}: enter must be beyond the cooler level's`);
        previous = sign * enter;
    }
}

/** Time-aware EMA: irregular polls and gaps weigh by elapsed time, not by sample count. */
class Ema {
    value?: number;
    private at = 0;

    push(sample: number, now: number, halfLifeMs: number) {
        if (this.value == null || halfLifeMs <= 0) this.value = sample;
        else this.value += (1 - 2 ** (-Math.max(0, now - this.at) / halfLifeMs)) * (sample - this.value);
        this.at = now;
        return this.value;
    }
}

/** The level a value holds given the level it held before (hysteresis). */
function bandSignal(value: number, held: PowerLevel, bands: LevelBands, worse: "above" | "below", describe: (threshold: number) => string): Signal {
    const crosses = (threshold: number) => (worse === "above" ? value >= threshold : value <= threshold);
    for (const level of HOT_LEVELS) {
        const {enter, exit} = bands[level];
        if (crosses(enter)) return {level, reason: `${describe(enter)} (${level})`};
        if (levelRank(held) >= levelRank(level) && crosses(exit)) return {level, reason: `${describe(exit)} (holding ${level})`};
    }
    return NOMINAL;
}

export class LevelPolicy {
    readonly thresholds: GovernorThresholds;
    private readonly ema = {temperature: new Ema(), trip: new Ema(), cpu: new Ema()};
    private readonly held: Record<"temperature" | "trip" | "battery", PowerLevel> = {temperature: "nominal", trip: "nominal", battery: "nominal"};
    private smoothed: SmoothedSignals = {};
    private target: Signal = NOMINAL;
    private override: PowerLevel | null = null;
    private readingForced: PowerLevel | null = null;
    private wasForced = false;
    private level: PowerLevel = "nominal";
    private since: number;
    /** Since when the target has been below the level (the dwell clock). */
    private belowSince?: number;
    private decision: LevelDecision;

    constructor(thresholds: GovernorThresholdsInput = {}, now = 0) {
        this.thresholds = resolveThresholds(thresholds);
        this.since = now;
        this.decision = {level: "nominal", target: "nominal", reason: NOMINAL.reason, smoothed: {}, since: now, forced: null};
    }

    current(): LevelDecision {
        return this.decision;
    }

    /** Feeds one (merged) reading; `now` defaults to the reading's own timestamp. */
    update(reading: PowerReading, now = reading.at): LevelDecision {
        this.target = this.signals(reading, now).reduce((hottest, signal) => (levelRank(signal.level) > levelRank(hottest.level) ? signal : hottest), NOMINAL);
        this.readingForced = reading.forcedLevel ?? null;
        return this.decide(now);
    }

    /** The manual override; null hands the level back to the signals. Applies at once. */
    setOverride(level: PowerLevel | null, now: number): LevelDecision {
        this.override = level;
        return this.decide(now);
    }

    private signals(reading: PowerReading, now: number): Signal[] {
        const t = this.thresholds;
        const half = t.smoothingHalfLifeMs;
        const signals: Signal[] = [];
        if (t.followOsThermalLevel && reading.osThermalLevel != null && reading.osThermalLevel !== "nominal")
            signals.push({level: reading.osThermalLevel, reason: `OS thermal level ${reading.osThermalLevel}`});

        const zones = (reading.thermalZones ?? []).filter((zone) => Number.isFinite(zone.celsius));
        const absolute = t.absoluteZones === "all" ? zones : zones.filter((zone) => !(zone.tripCelsius! > 0));
        if (absolute.length > 0) {
            const hottest = absolute.reduce((a, b) => (b.celsius > a.celsius ? b : a));
            const value = this.ema.temperature.push(hottest.celsius, now, half);
            this.smoothed.temperatureCelsius = value;
            const signal = bandSignal(value, this.held.temperature, t.temperatureCelsius, "above", (limit) => `temperature ${value.toFixed(1)} °C ≥ ${limit}`);
            this.held.temperature = signal.level;
            signals.push(signal);
        }
        const tripped = zones.filter((zone) => zone.tripCelsius! > 0);
        if (tripped.length > 0) {
            const worst = tripped.reduce((a, b) => (b.celsius / b.tripCelsius! > a.celsius / a.tripCelsius! ? b : a));
            const value = this.ema.trip.push(worst.celsius / worst.tripCelsius!, now, half);
            this.smoothed.tripFraction = value;
            const signal = bandSignal(value, this.held.trip, t.tripFraction, "above",
                (limit) => `${worst.type} at ${percent(value)} of its ${worst.tripCelsius} °C trip point ≥ ${percent(limit)}`);
            this.held.trip = signal.level;
            signals.push(signal);
        }
        const battery = reading.battery;
        if (battery != null) {
            const signal = battery.discharging
                ? bandSignal(battery.percent, this.held.battery, t.batteryPercent, "below", (limit) => `battery ${Math.round(battery.percent)}% on battery ≤ ${limit}%`)
                : NOMINAL;
            this.held.battery = signal.level;
            signals.push(signal);
        }
        if (reading.lowPowerMode === true && t.lowPowerModeLevel != null)
            signals.push({level: t.lowPowerModeLevel, reason: `low-power mode (${t.lowPowerModeLevel})`});
        if (reading.cpuFrequencyRatio != null && Number.isFinite(reading.cpuFrequencyRatio)) {
            const value = this.ema.cpu.push(reading.cpuFrequencyRatio, now, half);
            this.smoothed.cpuFrequencyRatio = value;
            if (t.cpuFrequency != null && value < t.cpuFrequency.below)
                signals.push({level: t.cpuFrequency.level, reason: `CPU at ${percent(value)} of max frequency < ${percent(t.cpuFrequency.below)} (${t.cpuFrequency.level})`});
        }
        return signals;
    }

    private decide(now: number): LevelDecision {
        const forced = this.override ?? this.readingForced;
        const target = this.target;
        let reason = target.reason;
        if (forced != null) {
            this.enter(forced, now);
            reason = `forced ${forced} (${this.override != null ? "manual override" : "reading's forcedLevel"})`;
        } else if (this.wasForced || levelRank(target.level) >= levelRank(this.level)) {
            this.enter(target.level, now);
        } else {
            this.belowSince ??= now;
            const waited = now - this.belowSince;
            if (waited >= this.thresholds.minDwellMs) {
                this.enter(POWER_LEVELS[levelRank(this.level) - 1]!, now);
                // The next step waits a fresh dwell.
                if (this.level !== target.level) this.belowSince = now;
            }
            if (this.level !== target.level) {
                const left = Math.max(0, this.thresholds.minDwellMs - (now - this.belowSince!));
                reason = `holding ${this.level}, next step down in ${(left / 1000).toFixed(1)} s (signals: ${target.reason})`;
            }
        }
        this.wasForced = forced != null;
        this.decision = {level: this.level, target: target.level, reason, smoothed: {...this.smoothed}, since: this.since, forced};
        return this.decision;
    }

    private enter(level: PowerLevel, now: number) {
        if (level !== this.level) this.since = now;
        this.level = level;
        this.belowSince = undefined;
    }
}

const percent = (fraction: number) => `${Math.round(fraction * 100)}%`;
