import {open, readdir, type FileHandle} from "node:fs/promises";
import path from "node:path";
import type {PowerReading, PowerSensor} from "../types.js";
import {
    batteryFiles, isExternalSupply, maxPlausibleCelsius, parseBattery, parseCpuFrequencyRatio, parseSysfsCelsius,
    parseThermalZone, type SysfsCpu, type SysfsSupply, type SysfsTripPoint, type SysfsZone
} from "./sysfs-parse.js";

export interface SysfsSensorOptions {
    /** Root of the sysfs tree. Default: "/sys"; tests point it at a fixture folder. */
    root?: string;
}

const defaultSysfsSensorOptions = {root: "/sys"} satisfies Required<SysfsSensorOptions>;

/**
 * Linux and Android thermal zones, batteries and cpufreq from sysfs. Each poll lists the
 * folders afresh (batteries and USB supplies come and go) and reads every file in parallel;
 * trip points are read only for zones whose temperature is usable, since phones have dozens
 * of dead zones. Parsing lives in `sysfs-parse.ts`.
 */
export class SysfsSensor implements PowerSensor {
    readonly name = "linux-sysfs";
    readonly root: string;

    constructor(options: SysfsSensorOptions = {}) {
        this.root = options.root ?? defaultSysfsSensorOptions.root;
    }

    /** `undefined` when the tree has none of thermal zones, a battery or cpufreq. */
    async read(): Promise<PowerReading | undefined> {
        try {
            const at = Date.now();
            const [zones, supplies, cpus] = await Promise.all([
                readThermalZones(path.join(this.root, "class/thermal")),
                readPowerSupplies(path.join(this.root, "class/power_supply")),
                readCpuFrequencies(path.join(this.root, "devices/system/cpu"))
            ]);
            const thermalZones = zones.map(parseThermalZone).filter((zone) => zone != null);
            const battery = parseBattery(supplies);
            const cpuFrequencyRatio = parseCpuFrequencyRatio(cpus);
            if (thermalZones.length === 0 && battery == null && cpuFrequencyRatio == null)
                return undefined;
            const reading: PowerReading = {at, source: this.name};
            if (thermalZones.length > 0)
                reading.thermalZones = thermalZones;
            if (battery != null)
                reading.battery = battery;
            if (cpuFrequencyRatio != null)
                reading.cpuFrequencyRatio = cpuFrequencyRatio;
            return reading;
        } catch {
            return undefined;
        }
    }
}

async function readThermalZones(folder: string): Promise<SysfsZone[]> {
    const names = (await list(folder)).filter((name) => /^thermal_zone\d+$/.test(name));
    return Promise.all(names.map((name) => readThermalZone(path.join(folder, name))));
}

async function readThermalZone(folder: string): Promise<SysfsZone> {
    const [type, temp] = await Promise.all([text(folder, "type"), text(folder, "temp")]);
    const celsius = parseSysfsCelsius(temp);
    if (celsius == null || celsius > maxPlausibleCelsius)
        return {type, temp, trips: []};

    const tripIndexes = (await list(folder))
        .map((name) => /^trip_point_(\d+)_type$/.exec(name)?.[1])
        .filter((index) => index != null);
    const trips = await Promise.all(tripIndexes.map(async (index): Promise<SysfsTripPoint> => {
        const [tripType, tripTemp] = await Promise.all([
            text(folder, `trip_point_${index}_type`),
            text(folder, `trip_point_${index}_temp`)
        ]);
        return {type: tripType, temp: tripTemp};
    }));
    return {type, temp, trips};
}

async function readPowerSupplies(folder: string): Promise<SysfsSupply[]> {
    const names = await list(folder);
    return Promise.all(names.map(async (name): Promise<SysfsSupply> => {
        const supplyFolder = path.join(folder, name);
        const type = await text(supplyFolder, "type");
        if (type === "Battery") {
            const values = await Promise.all(batteryFiles.map((file) => text(supplyFolder, file)));
            const battery: SysfsSupply = {type};
            batteryFiles.forEach((file, i) => {
                if (values[i] != null)
                    battery[file] = values[i];
            });
            return battery;
        }
        if (isExternalSupply(type))
            return {type, online: await text(supplyFolder, "online")};
        return {type};
    }));
}

async function readCpuFrequencies(folder: string): Promise<SysfsCpu[]> {
    const names = (await list(folder)).filter((name) => /^cpu\d+$/.test(name));
    return Promise.all(names.map(async (name): Promise<SysfsCpu> => {
        const cpufreq = path.join(folder, name, "cpufreq");
        const [cur, cpuinfoMax] = await Promise.all([text(cpufreq, "scaling_cur_freq"), text(cpufreq, "cpuinfo_max_freq")]);
        if (cur == null)
            return {};
        return {cur, max: cpuinfoMax ?? await text(cpufreq, "scaling_max_freq")};
    }));
}

async function list(folder: string) {
    try {
        return await readdir(folder);
    } catch {
        return [];
    }
}

/**
 * A file's trimmed text, or `undefined` when it is missing or unreadable (EIO/ENODATA from dead
 * sensors). One 4 KiB read instead of `readFile`: sysfs reports every file as 4096 bytes, so
 * `readFile` spends an fstat and a second read per file (measured ~1.5× slower per poll).
 */
async function text(folder: string, file: string) {
    let handle: FileHandle | undefined;
    try {
        handle = await open(path.join(folder, file), "r");
        const buffer = Buffer.allocUnsafe(4096);
        const {bytesRead} = await handle.read(buffer, 0, buffer.length, 0);
        return buffer.toString("utf8", 0, bytesRead).trim();
    } catch {
        return undefined;
    } finally {
        await handle?.close().catch(() => undefined);
    }
}
