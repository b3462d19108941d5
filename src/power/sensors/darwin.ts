import type {BatteryReading, PowerLevel, PowerReading, PowerSensor} from "../types.js";
import {runCommand, singleFlight, type CommandRunner} from "./command.js";

/** The notify(3) key libkern publishes as `kOSThermalNotificationPressureLevelName`. */
export const thermalPressureKey = "com.apple.system.thermalpressurelevel";

export interface DarwinSensorOptions {
    /** Default: "/usr/bin/pmset" (an absolute path, so PATH cannot substitute it). */
    pmset?: string;
    /** Default: "/usr/bin/notifyutil". */
    notifyutil?: string;
    /**
     * Per-command limit in ms. Default: 1500 (pmset answers in tens of ms), under the
     * governor's 2 s sensor timeout so a slow command drops its part instead of the reading.
     */
    timeoutMs?: number;
    /** Runs one command; default `runCommand` (execFile). Tests pass recorded outputs. */
    run?: CommandRunner;
}

const defaultDarwinSensorOptions = {
    pmset: "/usr/bin/pmset",
    notifyutil: "/usr/bin/notifyutil",
    timeoutMs: 1500,
    run: runCommand
} satisfies Required<DarwinSensorOptions>;

/**
 * macOS battery, low power mode, CPU speed limit and thermal pressure from `pmset` and
 * `notifyutil`, four short commands run in parallel per poll. A command that fails only
 * drops its part of the reading; all four failing gives `undefined`.
 */
export class DarwinSensor implements PowerSensor {
    readonly name = "darwin-pmset";
    private readonly options: Required<DarwinSensorOptions>;
    readonly read: () => Promise<PowerReading | undefined>;

    constructor(options: DarwinSensorOptions = {}) {
        this.options = {...defaultDarwinSensorOptions, ...options};
        this.read = singleFlight(() => this.readOnce());
    }

    private async readOnce(): Promise<PowerReading | undefined> {
        try {
            const {pmset, notifyutil, timeoutMs, run} = this.options;
            const at = Date.now();
            const [batt, settings, therm, pressure] = await Promise.all([
                run(pmset, ["-g", "batt"], timeoutMs),
                run(pmset, ["-g"], timeoutMs),
                run(pmset, ["-g", "therm"], timeoutMs),
                run(notifyutil, ["-g", thermalPressureKey], timeoutMs)
            ]);
            if (batt == null && settings == null && therm == null && pressure == null)
                return undefined;

            const reading: PowerReading = {at, source: this.name};
            const battery = batt == null ? undefined : parsePmsetBatt(batt);
            const lowPowerMode = settings == null ? undefined : parsePmsetLowPowerMode(settings);
            const {cpuFrequencyRatio} = therm == null ? {} : parsePmsetTherm(therm);
            const osThermalLevel = pressure == null ? undefined : parseThermalPressure(pressure);
            if (battery != null)
                reading.battery = battery;
            if (lowPowerMode != null)
                reading.lowPowerMode = lowPowerMode;
            if (cpuFrequencyRatio != null)
                reading.cpuFrequencyRatio = cpuFrequencyRatio;
            if (osThermalLevel != null)
                reading.osThermalLevel = osThermalLevel;
            return reading;
        } catch {
            return undefined;
        }
    }
}

/**
 * `pmset -g batt`:
 *
 *     Now drawing from 'Battery Power'
 *      -InternalBattery-0 (id=4653155)	62%; discharging; 3:12 remaining present: true
 *
 * The state after the percent decides when it is explicit ("discharging" → true; "charging",
 * "charged", "finishing charge", "AC attached; not charging" → false), else the source line.
 * Only internal batteries count (a UPS is listed too); a Mac without one gives `undefined`.
 */
export function parsePmsetBatt(text: string): BatteryReading | undefined {
    const match = /-InternalBattery-\d+[^\n]*?\s(\d+)%;\s*([^;\n]*)/.exec(text);
    if (match == null)
        return undefined;
    const percent = Math.min(100, Number.parseInt(match[1]!, 10));
    const state = match[2]!.trim().toLowerCase();
    let discharging: boolean;
    if (state === "discharging")
        discharging = true;
    else if (/charg|ac attached/.test(state))
        discharging = false;
    else
        discharging = /drawing from 'Battery Power'/.test(text);
    return {percent, discharging};
}

/**
 * Low power mode from `pmset -g` ("Currently in use" settings): `lowpowermode 1`. Some
 * MacBook Pros list `powermode` instead (0 automatic, 1 low power, 2 high power).
 * `undefined` when neither line is there (older macOS).
 */
export function parsePmsetLowPowerMode(text: string): boolean | undefined {
    const lowPower = /^\s*lowpowermode\s+(\d+)/m.exec(text);
    if (lowPower != null)
        return lowPower[1] !== "0";
    const powerMode = /^\s*powermode\s+(\d+)/m.exec(text);
    return powerMode == null ? undefined : powerMode[1] === "1";
}

/**
 * `pmset -g therm`. Intel Macs print the last "CPU Power notify" with `CPU_Speed_Limit = 70`
 * (percent of full speed); Apple Silicon prints only notes such as "No CPU power status has
 * been recorded", which means no limit known, so no ratio.
 */
export function parsePmsetTherm(text: string): {cpuFrequencyRatio?: number} {
    const limits = [...text.matchAll(/CPU_Speed_Limit\s*=\s*(\d+)/g)];
    const last = limits.at(-1);
    if (last == null)
        return {};
    return {cpuFrequencyRatio: Math.min(100, Number.parseInt(last[1]!, 10)) / 100};
}

/**
 * `notifyutil -g com.apple.system.thermalpressurelevel` prints the key and the value. On macOS
 * the values are libkern's OSThermalPressureLevel: Nominal 0, Moderate 1, Heavy 2, Trapping 3,
 * Sleeping 4 (iOS spaces them by 10; not handled). Mapped as NSProcessInfo.thermalState does:
 * nominal, fair, serious, and critical for both trapping and sleeping.
 */
export function parseThermalPressure(text: string): PowerLevel | undefined {
    const match = /(?:^|\s)(\d+)\s*$/.exec(text.trim());
    if (match == null)
        return undefined;
    return pressureLevels[Number.parseInt(match[1]!, 10)];
}

const pressureLevels: readonly (PowerLevel | undefined)[] = ["nominal", "fair", "serious", "critical", "critical"];
