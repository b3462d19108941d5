import {fileURLToPath} from "node:url";
import {describe, expect, it} from "vitest";
import {SysfsSensor} from "./linux-sysfs.js";
import {parseBattery, parseCpuFrequencyRatio, parseSysfsCelsius, parseThermalZone} from "./sysfs-parse.js";

const fixtures = fileURLToPath(new URL("../../../test/fixtures/power/", import.meta.url));
const read = (tree: string) => new SysfsSensor({root: fixtures + tree}).read();

describe("SysfsSensor on recorded trees", () => {
    it("reads a laptop on battery", async () => {
        const before = Date.now();
        const reading = await read("sysfs-laptop");
        expect(reading).toEqual({
            at: expect.any(Number),
            source: "linux-sysfs",
            thermalZones: [
                {type: "acpitz", celsius: 48, tripCelsius: 95},
                {type: "x86_pkg_temp", celsius: 56}
            ],
            battery: {percent: 54, discharging: true, powerWatts: 8.41},
            cpuFrequencyRatio: 0.625
        });
        expect(reading!.at).toBeGreaterThanOrEqual(before);
    });

    it("reads an Android phone: degrees, dead zones, battery + usb supplies, big.LITTLE cpufreq", async () => {
        const reading = await read("sysfs-android");
        expect(reading?.thermalZones).toEqual([
            {type: "aoss0-usr", celsius: 33.6, tripCelsius: 125},
            {type: "cpu-0-0-usr", celsius: 46.8, tripCelsius: 95},
            {type: "cpu-1-0-usr", celsius: 52.1, tripCelsius: 95},
            {type: "gpuss-0-usr", celsius: 44.3, tripCelsius: 95},
            {type: "battery", celsius: 31},
            {type: "skin-therm", celsius: 38.4, tripCelsius: 44}
        ]);
        expect(reading?.battery).toEqual({percent: 67, discharging: true, powerWatts: 1.6});
        expect(reading?.cpuFrequencyRatio).toBe(0.773);
    });

    it("reads a charging laptop with only scaling_max_freq", async () => {
        const reading = await read("sysfs-charging");
        expect(reading).toMatchObject({
            thermalZones: [{type: "acpitz", celsius: 41, tripCelsius: 100}],
            battery: {percent: 78, discharging: false, powerWatts: 19.15},
            cpuFrequencyRatio: 0.875
        });
    });

    it("reads nothing from a tree without sensors or from a missing root, without throwing", async () => {
        await expect(read("sysfs-empty")).resolves.toBeUndefined();
        await expect(new SysfsSensor({root: "/nonexistent/edge-llm-sys"}).read()).resolves.toBeUndefined();
        await expect(new SysfsSensor({root: fixtures + "README.md"}).read()).resolves.toBeUndefined();
    });
});

describe("sysfs parsers", () => {
    it("takes millidegrees, whole degrees below 1000, and rejects unset values", () => {
        expect(parseSysfsCelsius("45000")).toBe(45);
        expect(parseSysfsCelsius("45")).toBe(45);
        expect(parseSysfsCelsius("0")).toBeUndefined();
        expect(parseSysfsCelsius("-273000")).toBeUndefined();
        expect(parseSysfsCelsius("")).toBeUndefined();
        expect(parseSysfsCelsius("N/A")).toBeUndefined();
        expect(parseSysfsCelsius(undefined)).toBeUndefined();
    });

    it("skips absurd zones and picks the lowest passive/hot/critical trip above 0", () => {
        expect(parseThermalZone({type: "tz", temp: "151000", trips: []})).toBeUndefined();
        expect(parseThermalZone({type: "tz", temp: "400", trips: []})).toBeUndefined();
        expect(parseThermalZone({temp: "60000", trips: [
            {type: "active", temp: "50000"},
            {type: "hot", temp: "90000"},
            {type: "critical", temp: "105000"},
            {type: "passive", temp: "0"}
        ]})).toEqual({type: "unknown", celsius: 60, tripCelsius: 90});
    });

    it("decides discharging from the battery status first, then from external supplies", () => {
        const battery = {type: "Battery", capacity: "40"};
        expect(parseBattery([{...battery, status: "Discharging"}, {type: "Mains", online: "1"}])?.discharging).toBe(true);
        expect(parseBattery([{...battery, status: "Not charging"}])?.discharging).toBe(false);
        expect(parseBattery([{...battery, status: "Full"}])?.discharging).toBe(false);
        expect(parseBattery([{...battery, status: "Unknown"}, {type: "USB", online: "0"}])?.discharging).toBe(true);
        expect(parseBattery([battery, {type: "USB_PD", online: "0"}, {type: "Mains", online: "1"}])?.discharging).toBe(false);
        expect(parseBattery([battery])?.discharging).toBe(false);
    });

    it("combines system batteries and ignores peripherals, absent packs and other types", () => {
        expect(parseBattery([
            {type: "Battery", status: "Not charging", capacity: "80", power_now: "0"},
            {type: "Battery", status: "Discharging", energy_now: "20000000", energy_full: "50000000", power_now: "-6500000"},
            {type: "Battery", scope: "Device", capacity: "3", status: "Discharging"},
            {type: "Battery", present: "0", capacity: "0"},
            {type: "BMS", capacity: "10"}
        ])).toEqual({percent: 60, discharging: true, powerWatts: 6.5});
        expect(parseBattery([{type: "Battery", charge_now: "1000", charge_full: "4000"}])).toEqual({percent: 25, discharging: false});
        expect(parseBattery([{type: "Battery", status: "Discharging"}])).toBeUndefined();
        expect(parseBattery([{type: "Mains", online: "1"}])).toBeUndefined();
    });

    it("averages the cpufreq ratio, clamps turbo and skips CPUs without numbers", () => {
        expect(parseCpuFrequencyRatio([{cur: "3000000", max: "2000000"}, {cur: "1000000", max: "2000000"}, {cur: "800000"}, {}])).toBe(0.75);
        expect(parseCpuFrequencyRatio([{cur: "1", max: "0"}])).toBeUndefined();
        expect(parseCpuFrequencyRatio([])).toBeUndefined();
    });
});
