import {readFileSync} from "node:fs";
import {describe, expect, it} from "vitest";
import type {CommandRunner} from "./command.js";
import {DarwinSensor, parsePmsetBatt, parsePmsetLowPowerMode, parsePmsetTherm, parseThermalPressure} from "./darwin.js";

const fixture = (name: string) => readFileSync(new URL(`../../../test/fixtures/power/darwin/${name}`, import.meta.url), "utf8");

describe("macOS parsers", () => {
    it("parses pmset -g batt", () => {
        expect(parsePmsetBatt(fixture("pmset-g-batt.battery-discharging.txt"))).toEqual({percent: 62, discharging: true});
        expect(parsePmsetBatt(fixture("pmset-g-batt.battery-no-estimate.txt"))).toEqual({percent: 97, discharging: true});
        expect(parsePmsetBatt(fixture("pmset-g-batt.ac-charged.txt"))).toEqual({percent: 100, discharging: false});
        expect(parsePmsetBatt(fixture("pmset-g-batt.ac-charging.txt"))).toEqual({percent: 78, discharging: false});
        expect(parsePmsetBatt(fixture("pmset-g-batt.ac-not-charging.txt"))).toEqual({percent: 80, discharging: false});
        expect(parsePmsetBatt(fixture("pmset-g-batt.desktop.txt"))).toBeUndefined();
        expect(parsePmsetBatt("")).toBeUndefined();
    });

    it("parses low power mode from pmset -g", () => {
        expect(parsePmsetLowPowerMode(fixture("pmset-g.lowpowermode-on.txt"))).toBe(true);
        expect(parsePmsetLowPowerMode(fixture("pmset-g.lowpowermode-off.txt"))).toBe(false);
        expect(parsePmsetLowPowerMode(" powermode            1\n")).toBe(true);
        expect(parsePmsetLowPowerMode(" powermode            2\n")).toBe(false);
        expect(parsePmsetLowPowerMode("System-wide power settings:\n sleep 1\n")).toBeUndefined();
    });

    it("parses the CPU speed limit from pmset -g therm", () => {
        expect(parsePmsetTherm(fixture("pmset-g-therm.intel-throttled.txt"))).toEqual({cpuFrequencyRatio: 0.7});
        expect(parsePmsetTherm(fixture("pmset-g-therm.apple-silicon.txt"))).toEqual({});
    });

    it("maps OSThermalPressureLevel to power levels", () => {
        expect(parseThermalPressure(fixture("notifyutil-thermalpressurelevel.nominal.txt"))).toBe("nominal");
        expect(parseThermalPressure(fixture("notifyutil-thermalpressurelevel.heavy.txt"))).toBe("serious");
        const levels = [0, 1, 2, 3, 4, 5].map((value) => parseThermalPressure(`com.apple.system.thermalpressurelevel ${value}\n`));
        expect(levels).toEqual(["nominal", "fair", "serious", "critical", "critical", undefined]);
        expect(parseThermalPressure("")).toBeUndefined();
    });
});

describe("DarwinSensor", () => {
    const outputs: Record<string, string> = {
        "pmset -g batt": fixture("pmset-g-batt.battery-discharging.txt"),
        "pmset -g": fixture("pmset-g.lowpowermode-on.txt"),
        "pmset -g therm": fixture("pmset-g-therm.intel-throttled.txt"),
        "notifyutil -g com.apple.system.thermalpressurelevel": fixture("notifyutil-thermalpressurelevel.heavy.txt")
    };
    const recorded: CommandRunner = async (file, args) => outputs[[file, ...args].join(" ")];

    it("runs the four commands and assembles one reading", async () => {
        const sensor = new DarwinSensor({pmset: "pmset", notifyutil: "notifyutil", run: recorded});
        expect(await sensor.read()).toEqual({
            at: expect.any(Number),
            source: "darwin-pmset",
            battery: {percent: 62, discharging: true},
            lowPowerMode: true,
            cpuFrequencyRatio: 0.7,
            osThermalLevel: "serious"
        });
    });

    it("keeps what it could read when some commands fail", async () => {
        const sensor = new DarwinSensor({pmset: "pmset", notifyutil: "/nonexistent/notifyutil", run: async (file, args) =>
            args.length === 2 && args[1] === "batt" ? recorded(file, args, 0) : undefined});
        expect(await sensor.read()).toEqual({at: expect.any(Number), source: "darwin-pmset", battery: {percent: 62, discharging: true}});
    });

    it("reads nothing, without throwing, when the commands do not exist", async () => {
        const sensor = new DarwinSensor({pmset: "/nonexistent/pmset", notifyutil: "edge-llm-no-such-command", timeoutMs: 500});
        await expect(sensor.read()).resolves.toBeUndefined();
    });

    it("reads nothing when the runner itself throws", async () => {
        const sensor = new DarwinSensor({run: () => {
            throw new Error("spawn failed");
        }});
        await expect(sensor.read()).resolves.toBeUndefined();
    });
});
