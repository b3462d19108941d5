import type {BatteryReading, PowerReading, PowerSensor, ThermalZoneReading} from "../types.js";
import {runCommand, singleFlight, type CommandRunner} from "./command.js";
import {maxPlausibleCelsius} from "./sysfs-parse.js";

export interface TermuxSensorOptions {
    /** Default: "termux-battery-status" (looked up on PATH; Termux's bin folder). */
    command?: string;
    /**
     * Limit in ms. Default: 1800: the call goes through the Termux:API app, which can take a
     * second to wake and hangs for good when the app is not installed; kept under the
     * governor's 2 s sensor timeout.
     */
    timeoutMs?: number;
    /** Runs the command; default `runCommand` (execFile). */
    run?: CommandRunner;
}

const defaultTermuxSensorOptions = {
    command: "termux-battery-status",
    timeoutMs: 1800,
    run: runCommand
} satisfies Required<TermuxSensorOptions>;

/**
 * Android battery (and its temperature, as a "battery" thermal zone) through Termux:API, for
 * phones where SELinux hides /sys/class/power_supply from apps.
 */
export class TermuxSensor implements PowerSensor {
    readonly name = "termux";
    private readonly options: Required<TermuxSensorOptions>;
    readonly read: () => Promise<PowerReading | undefined>;

    constructor(options: TermuxSensorOptions = {}) {
        this.options = {...defaultTermuxSensorOptions, ...options};
        this.read = singleFlight(() => this.readOnce());
    }

    private async readOnce(): Promise<PowerReading | undefined> {
        try {
            const at = Date.now();
            const output = await this.options.run(this.options.command, [], this.options.timeoutMs);
            const parsed = output == null ? undefined : parseTermuxBatteryStatus(output);
            if (parsed == null)
                return undefined;
            const reading: PowerReading = {at, source: this.name};
            if (parsed.battery != null)
                reading.battery = parsed.battery;
            if (parsed.thermalZone != null)
                reading.thermalZones = [parsed.thermalZone];
            return reading;
        } catch {
            return undefined;
        }
    }
}

export interface TermuxBatteryStatus {
    battery?: BatteryReading;
    /** `{type: "battery", celsius}` from the battery temperature. */
    thermalZone?: ThermalZoneReading;
}

/**
 * `termux-battery-status` JSON. Old releases print health, percentage, plugged, status,
 * temperature and current; newer ones add present, technology, voltage (mV), current_average,
 * level, scale, charge_counter, energy, cycle. `current` is µA, its sign differs by device.
 *
 * Discharging: status DISCHARGING → true, CHARGING / FULL → false; otherwise (NOT_CHARGING,
 * UNKNOWN) the plug decides: UNPLUGGED → true. `undefined` for text that is not such JSON.
 */
export function parseTermuxBatteryStatus(json: string): TermuxBatteryStatus | undefined {
    let data: unknown;
    try {
        data = JSON.parse(json);
    } catch {
        return undefined;
    }
    if (typeof data !== "object" || data == null || Array.isArray(data))
        return undefined;
    const fields = data as Record<string, unknown>;

    const result: TermuxBatteryStatus = {};
    const percent = termuxPercent(fields);
    if (percent != null) {
        const battery: BatteryReading = {percent, discharging: termuxDischarging(fields.status, fields.plugged)};
        const current = numberField(fields.current);
        const millivolts = numberField(fields.voltage);
        if (current != null && millivolts != null && current !== 0 && millivolts > 0)
            battery.powerWatts = Math.round(Math.abs(current) * millivolts / 1e7) / 100;
        result.battery = battery;
    }
    // Android reports tenths of a degree; a missing value comes out as Integer.MIN_VALUE / 10.
    const celsius = numberField(fields.temperature);
    if (celsius != null && celsius > 0 && celsius <= maxPlausibleCelsius)
        result.thermalZone = {type: "battery", celsius};
    return result.battery == null && result.thermalZone == null ? undefined : result;
}

function termuxPercent(fields: Record<string, unknown>) {
    const percentage = numberField(fields.percentage);
    const level = numberField(fields.level);
    const scale = numberField(fields.scale);
    const percent = percentage ?? (level != null && scale != null && scale > 0 ? (level / scale) * 100 : undefined);
    return percent == null || percent < 0 ? undefined : Math.min(100, Math.round(percent));
}

function termuxDischarging(status: unknown, plugged: unknown) {
    if (status === "DISCHARGING")
        return true;
    if (status === "CHARGING" || status === "FULL")
        return false;
    return plugged === "UNPLUGGED";
}

function numberField(value: unknown) {
    return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}
