import type {BatteryReading, ThermalZoneReading} from "../types.js";

/**
 * Pure parsers for the text of Linux / Android sysfs files, kept apart from the reads so tests
 * can feed them recorded values. Every input is the file's trimmed text, or `undefined` when
 * the file is missing or unreadable.
 */

export interface SysfsTripPoint {
    /** `trip_point_N_type`: active | passive | hot | critical. */
    type?: string;
    temp?: string;
}

export interface SysfsZone {
    type?: string;
    temp?: string;
    trips: SysfsTripPoint[];
}

/** The files of one `class/power_supply/<name>/` folder that the parsers look at. */
export const batteryFiles = [
    "status", "capacity", "present", "scope", "power_now", "current_now", "voltage_now",
    "energy_now", "energy_full", "charge_now", "charge_full"
] as const;
export type SysfsSupply = {type?: string; online?: string} & Partial<Record<(typeof batteryFiles)[number], string>>;

export interface SysfsCpu {
    /** `scaling_cur_freq`, kHz. */
    cur?: string;
    /** `cpuinfo_max_freq`, else `scaling_max_freq`, kHz. */
    max?: string;
}

/** Above this a zone's reading is a placeholder or a broken sensor, not a temperature. */
export const maxPlausibleCelsius = 150;

/**
 * A sysfs temperature in °C. The ABI says millidegrees, but some Android kernels write whole
 * degrees: a value below 1000 (under 1 °C in millidegrees, which a running device never is)
 * is taken as degrees. 0 means "no sensor" and negatives are unset placeholders (-273000 is
 * common), so both give `undefined`; so does text that is not an integer.
 */
export function parseSysfsCelsius(text: string | undefined): number | undefined {
    const value = parseInteger(text);
    if (value == null || value <= 0)
        return undefined;
    return value < 1000 ? value : value / 1000;
}

/** A zone, or `undefined` when its temperature is missing, unset or beyond `maxPlausibleCelsius`. */
export function parseThermalZone(zone: SysfsZone): ThermalZoneReading | undefined {
    const celsius = parseSysfsCelsius(zone.temp);
    if (celsius == null || celsius > maxPlausibleCelsius)
        return undefined;
    const reading: ThermalZoneReading = {type: zone.type || "unknown", celsius};
    const trip = lowestTrip(zone.trips);
    if (trip != null)
        reading.tripCelsius = trip;
    return reading;
}

const limitingTrips = new Set(["passive", "hot", "critical"]);

function lowestTrip(trips: readonly SysfsTripPoint[]) {
    let lowest: number | undefined;
    for (const trip of trips) {
        if (trip.type == null || !limitingTrips.has(trip.type))
            continue;
        const celsius = parseSysfsCelsius(trip.temp);
        if (celsius != null && (lowest == null || celsius < lowest))
            lowest = celsius;
    }
    return lowest;
}

/** Supply types that mean outside power when `online` is 1 (older Android kernels use USB_DCP, USB_PD, …). */
export function isExternalSupply(type: string | undefined) {
    return type != null && (type === "Mains" || type === "Wireless" || type === "BrickID" || type.startsWith("USB"));
}

/**
 * One battery reading from every supply folder. Peripheral batteries (`scope` Device: mice,
 * headsets) and absent ones are ignored; several system batteries (dual-battery laptops) give
 * the mean percent, the summed watts, and discharging when any of them discharges.
 *
 * Discharging: an explicit battery `status` decides (Discharging → true; Charging, Full,
 * Not charging → false). With no status or "Unknown", the external supplies decide: one
 * online → false; some reported, none online → true; nothing known → false.
 */
export function parseBattery(supplies: readonly SysfsSupply[]): BatteryReading | undefined {
    const batteries = supplies.filter((supply) =>
        supply.type === "Battery" && supply.scope !== "Device" && supply.present !== "0");
    const percents = batteries.map(batteryPercent).filter((percent) => percent != null);
    if (percents.length === 0)
        return undefined;

    const reading: BatteryReading = {
        percent: Math.round(percents.reduce((sum, percent) => sum + percent, 0) / percents.length),
        discharging: isDischarging(batteries, supplies.filter((supply) => isExternalSupply(supply.type)))
    };
    const watts = batteries.map(batteryWatts).filter((value) => value != null);
    if (watts.length > 0)
        reading.powerWatts = Math.round(watts.reduce((sum, value) => sum + value, 0) * 100) / 100;
    return reading;
}

function batteryPercent(battery: SysfsSupply) {
    const capacity = parseInteger(battery.capacity);
    const percent = capacity ?? ratio(battery.energy_now, battery.energy_full) ?? ratio(battery.charge_now, battery.charge_full);
    return percent == null ? undefined : Math.min(100, Math.max(0, percent));
}

function ratio(now: string | undefined, full: string | undefined) {
    const current = parseInteger(now);
    const total = parseInteger(full);
    return current == null || total == null || total <= 0 ? undefined : (current / total) * 100;
}

/** `power_now` is µW; `current_now` × `voltage_now` is µA × µV. Android signs current by direction, so abs. */
function batteryWatts(battery: SysfsSupply) {
    const microwatts = parseInteger(battery.power_now);
    if (microwatts != null && microwatts !== 0)
        return Math.abs(microwatts) / 1e6;
    const microamps = parseInteger(battery.current_now);
    const microvolts = parseInteger(battery.voltage_now);
    if (microamps == null || microvolts == null || microamps === 0)
        return undefined;
    return Math.abs(microamps * microvolts) / 1e12;
}

function isDischarging(batteries: readonly SysfsSupply[], external: readonly SysfsSupply[]) {
    const statuses = batteries.map((battery) => battery.status);
    if (statuses.includes("Discharging"))
        return true;
    if (statuses.some((status) => status === "Charging" || status === "Full" || status === "Not charging"))
        return false;
    const online = external.map((supply) => supply.online).filter((value) => value != null);
    if (online.includes("1"))
        return false;
    return online.length > 0;
}

/**
 * Mean of current / max frequency over the CPUs that report both, clamped to 0–1 (turbo can
 * push `scaling_cur_freq` past a base-clock max). `undefined` without cpufreq.
 */
export function parseCpuFrequencyRatio(cpus: readonly SysfsCpu[]): number | undefined {
    let sum = 0;
    let count = 0;
    for (const cpu of cpus) {
        const cur = parseInteger(cpu.cur);
        const max = parseInteger(cpu.max);
        if (cur == null || max == null || cur < 0 || max <= 0)
            continue;
        sum += Math.min(1, cur / max);
        count++;
    }
    return count === 0 ? undefined : Math.round((sum / count) * 1000) / 1000;
}

function parseInteger(text: string | undefined) {
    if (text == null || !/^-?\d+$/.test(text.trim()))
        return undefined;
    return Number.parseInt(text, 10);
}
