import {POWER_LEVELS, type PowerLevel, type PowerReading} from "../types.js";

/**
 * Combines one poll's readings from several sensors into the one the governor sees: all
 * thermal zones, the first battery, low power mode when any says so, the worst OS level, the
 * lowest CPU frequency ratio, the first forced level; `at` is the latest sample's time and
 * `source` the sensors' names joined by "+". Sensors that read nothing are skipped; with none
 * left the result is a bare `{at: now, source: ""}`.
 */
export function mergeReadings(readings: readonly (PowerReading | undefined)[], now = Date.now()): PowerReading {
    const present = readings.filter((reading) => reading != null);
    const merged: PowerReading = {
        at: present.length === 0 ? now : Math.max(...present.map((reading) => reading.at)),
        source: present.map((reading) => reading.source).join("+")
    };
    const zones = present.flatMap((reading) => reading.thermalZones ?? []);
    if (zones.length > 0)
        merged.thermalZones = zones;
    const battery = present.find((reading) => reading.battery != null)?.battery;
    if (battery != null)
        merged.battery = battery;
    const lowPower = present.map((reading) => reading.lowPowerMode).filter((value) => value != null);
    if (lowPower.length > 0)
        merged.lowPowerMode = lowPower.includes(true);
    const osLevel = worstLevel(present.map((reading) => reading.osThermalLevel));
    if (osLevel != null)
        merged.osThermalLevel = osLevel;
    const ratios = present.map((reading) => reading.cpuFrequencyRatio).filter((ratio) => ratio != null);
    if (ratios.length > 0)
        merged.cpuFrequencyRatio = Math.min(...ratios);
    const forced = present.find((reading) => reading.forcedLevel != null)?.forcedLevel;
    if (forced != null)
        merged.forcedLevel = forced;
    return merged;
}

function worstLevel(levels: readonly (PowerLevel | undefined)[]) {
    let worst: PowerLevel | undefined;
    for (const level of levels) {
        if (level != null && (worst == null || POWER_LEVELS.indexOf(level) > POWER_LEVELS.indexOf(worst)))
            worst = level;
    }
    return worst;
}
