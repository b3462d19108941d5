/**
 * Power and thermal state as the governor sees it. Sensors report what they can; anything
 * missing simply does not constrain the level (no sensor at all means `nominal`).
 */

/** Apple's names for thermal pressure, used for every platform's levels. */
export const POWER_LEVELS = ["nominal", "fair", "serious", "critical"] as const;
export type PowerLevel = (typeof POWER_LEVELS)[number];

export interface ThermalZoneReading {
    /** sysfs `type` (e.g. "x86_pkg_temp", "cpu-0-0-usr", "battery"), or a label from the OS. */
    type: string;
    celsius: number;
    /** The lowest passive/hot/critical trip point above 0, if the zone has one (°C). */
    tripCelsius?: number;
}

export interface BatteryReading {
    /** 0–100. */
    percent: number;
    /** True while the battery is discharging (on battery power). */
    discharging: boolean;
    /** Watts drawn (positive) when the platform says; informational. */
    powerWatts?: number;
}

/** One sample from one sensor. Every field but `at` and `source` is optional. */
export interface PowerReading {
    /** Unix milliseconds when the sample was taken. */
    at: number;
    /** Sensor name, e.g. "linux-sysfs", "darwin-pmset", "termux". */
    source: string;
    thermalZones?: ThermalZoneReading[];
    battery?: BatteryReading;
    /** The OS says it is in a low-power / battery-saver mode. */
    lowPowerMode?: boolean;
    /** A level the OS itself reports (macOS thermal pressure, Android thermal status). */
    osThermalLevel?: PowerLevel;
    /** current / max CPU frequency, 0–1 (below ~0.7 while busy hints at thermal throttling). */
    cpuFrequencyRatio?: number;
    /** A sensor that knows better (e.g. an app-provided reading) may force the level; none of ours does. */
    forcedLevel?: PowerLevel;
}

/** A source of readings. `read()` never throws: a sensor that cannot read returns `undefined`. */
export interface PowerSensor {
    readonly name: string;
    read(): Promise<PowerReading | undefined>;
}
