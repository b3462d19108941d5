import type {PowerReading, PowerSensor} from "../types.js";
import {commandOnPath} from "./command.js";
import {DarwinSensor} from "./darwin.js";
import {SysfsSensor} from "./linux-sysfs.js";
import {TermuxSensor} from "./termux.js";
import {mergeReadings} from "./merge.js";

export {DarwinSensor, parsePmsetBatt, parsePmsetLowPowerMode, parsePmsetTherm, parseThermalPressure} from "./darwin.js";
export {SysfsSensor} from "./linux-sysfs.js";
export {TermuxSensor, parseTermuxBatteryStatus} from "./termux.js";
export {mergeReadings} from "./merge.js";

export interface DetectSensorsOptions {
    /** Default: `process.platform`. */
    platform?: NodeJS.Platform;
    /**
     * A sysfs tree to read instead of the platform's sensors (tests, or a fake root for the
     * governor). When set, it is the only sensor, on every platform. Default: unset.
     */
    sensorRoot?: string;
    /** Whether a command is on PATH. Default: `commandOnPath` (checks PATH folders, no spawning). */
    commandExists?: (name: string) => boolean;
}

/**
 * The sensors for this machine, chosen once at startup: Linux and Android read sysfs, plus
 * Termux:API when `termux-battery-status` is installed; macOS runs pmset / notifyutil; any
 * other platform has none (so the governor stays `nominal`). The manual override lives in
 * the governor (`setOverride`: config and /admin/power), not in a sensor.
 */
export function detectSensors(options: DetectSensorsOptions = {}): PowerSensor[] {
    if (options.sensorRoot != null)
        return [new SysfsSensor({root: options.sensorRoot})];
    const platform = options.platform ?? process.platform;
    const commandExists = options.commandExists ?? ((name: string) => commandOnPath(name));
    switch (platform) {
        case "linux":
        case "android": {
            const sensors: PowerSensor[] = [new SysfsSensor()];
            if (commandExists("termux-battery-status"))
                sensors.push(new TermuxSensor());
            return sensors;
        }
        case "darwin":
            return [new DarwinSensor()];
        default:
            return [];
    }
}

/** One merged reading from this machine's sensors, or undefined when none answers within `timeoutMs`. */
export async function readPowerOnce(options: DetectSensorsOptions & {timeoutMs?: number} = {}): Promise<PowerReading | undefined> {
    const sensors = detectSensors(options);
    if (sensors.length === 0) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), options.timeoutMs ?? 1000)));
    try {
        const readings = await Promise.race([Promise.all(sensors.map((sensor) => sensor.read())), timeout]);
        const present = readings?.filter((reading) => reading != null) ?? [];
        return present.length === 0 ? undefined : mergeReadings(present);
    } finally {
        clearTimeout(timer);
    }
}
