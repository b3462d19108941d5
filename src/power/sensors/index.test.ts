import {chmodSync, mkdtempSync, rmSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import path from "node:path";
import {afterAll, describe, expect, it} from "vitest";
import {commandOnPath, runCommand} from "./command.js";
import {DarwinSensor, detectSensors, mergeReadings, SysfsSensor, TermuxSensor} from "./index.js";

describe("mergeReadings", () => {
    it("combines several sensors' readings", () => {
        const merged = mergeReadings([
            {at: 100, source: "linux-sysfs", thermalZones: [{type: "cpu", celsius: 70, tripCelsius: 95}], cpuFrequencyRatio: 0.9,
                lowPowerMode: false, osThermalLevel: "fair"},
            undefined,
            {at: 130, source: "termux", thermalZones: [{type: "battery", celsius: 35}], battery: {percent: 40, discharging: true},
                cpuFrequencyRatio: 0.6, osThermalLevel: "serious"},
            {at: 120, source: "other", battery: {percent: 99, discharging: false}, lowPowerMode: true, osThermalLevel: "nominal"},
            {at: 110, source: "manual", forcedLevel: "critical"}
        ]);
        expect(merged).toEqual({
            at: 130,
            source: "linux-sysfs+termux+other+manual",
            thermalZones: [{type: "cpu", celsius: 70, tripCelsius: 95}, {type: "battery", celsius: 35}],
            battery: {percent: 40, discharging: true},
            lowPowerMode: true,
            osThermalLevel: "serious",
            cpuFrequencyRatio: 0.6,
            forcedLevel: "critical"
        });
    });

    it("keeps lowPowerMode false when only false was reported and leaves unknowns out", () => {
        expect(mergeReadings([{at: 5, source: "a", lowPowerMode: false}, {at: 6, source: "b"}])).toEqual({at: 6, source: "a+b", lowPowerMode: false});
    });

    it("gives a bare reading when no sensor read anything", () => {
        expect(mergeReadings([undefined, undefined], 42)).toEqual({at: 42, source: ""});
        expect(mergeReadings([], 7)).toEqual({at: 7, source: ""});
    });
});

describe("detectSensors", () => {
    const has = (present: boolean) => () => present;

    it("picks sysfs (and Termux when installed) on Linux and Android", () => {
        expect(detectSensors({platform: "linux", commandExists: has(false)}).map((sensor) => sensor.constructor)).toEqual([SysfsSensor]);
        expect(detectSensors({platform: "android", commandExists: has(true)}).map((sensor) => sensor.constructor)).toEqual([SysfsSensor, TermuxSensor]);
        expect((detectSensors({platform: "linux", commandExists: has(false)})[0] as SysfsSensor).root).toBe("/sys");
    });

    it("picks pmset on macOS and nothing elsewhere", () => {
        expect(detectSensors({platform: "darwin"}).map((sensor) => sensor.constructor)).toEqual([DarwinSensor]);
        expect(detectSensors({platform: "win32"})).toEqual([]);
        expect(detectSensors({platform: "freebsd"})).toEqual([]);
    });

    it("uses only a given sensor root, on any platform", () => {
        for (const platform of ["linux", "darwin", "win32"] as const) {
            const sensors = detectSensors({platform, sensorRoot: "/tmp/fake-sys", commandExists: has(true)});
            expect(sensors).toHaveLength(1);
            expect((sensors[0] as SysfsSensor).root).toBe("/tmp/fake-sys");
        }
    });
});

describe("commandOnPath", () => {
    const folder = mkdtempSync(path.join(tmpdir(), "edge-llm-path-"));
    afterAll(() => rmSync(folder, {recursive: true, force: true}));

    it("finds executables in PATH folders only", () => {
        writeFileSync(path.join(folder, "termux-battery-status"), "#!/bin/sh\n");
        chmodSync(path.join(folder, "termux-battery-status"), 0o755);
        writeFileSync(path.join(folder, "not-executable"), "");
        chmodSync(path.join(folder, "not-executable"), 0o644);
        const pathVariable = ["", "/nonexistent", folder].join(path.delimiter);
        expect(commandOnPath("termux-battery-status", pathVariable)).toBe(true);
        expect(commandOnPath("not-executable", pathVariable)).toBe(false);
        expect(commandOnPath("missing", pathVariable)).toBe(false);
        expect(commandOnPath("termux-battery-status", "")).toBe(false);
    });
});

describe("runCommand", () => {
    it("resolves with stdout, or undefined on failure and timeout", async () => {
        expect(await runCommand("sh", ["-c", "echo 42"], 2000)).toBe("42\n");
        expect(await runCommand("sh", ["-c", "exit 3"], 2000)).toBeUndefined();
        expect(await runCommand("edge-llm-no-such-command", [], 2000)).toBeUndefined();
        const start = Date.now();
        expect(await runCommand("sleep", ["5"], 100)).toBeUndefined();
        expect(Date.now() - start).toBeLessThan(2000);
    });
});
