import {readFileSync} from "node:fs";
import {describe, expect, it} from "vitest";
import {parseTermuxBatteryStatus, TermuxSensor} from "./termux.js";

const fixture = (name: string) => readFileSync(new URL(`../../../test/fixtures/power/termux/${name}`, import.meta.url), "utf8");

describe("parseTermuxBatteryStatus", () => {
    it("parses the current output format", () => {
        expect(parseTermuxBatteryStatus(fixture("termux-battery-status.discharging.json"))).toEqual({
            battery: {percent: 83, discharging: true, powerWatts: 1.26},
            thermalZone: {type: "battery", celsius: 31.2}
        });
    });

    it("parses the legacy format (no voltage, so no watts)", () => {
        expect(parseTermuxBatteryStatus(fixture("termux-battery-status.charging-legacy.json"))).toEqual({
            battery: {percent: 46, discharging: false},
            thermalZone: {type: "battery", celsius: 36.5}
        });
    });

    it("lets the plug decide when the status is neither charging nor discharging", () => {
        expect(parseTermuxBatteryStatus(fixture("termux-battery-status.not-charging-usb.json"))?.battery?.discharging).toBe(false);
        expect(parseTermuxBatteryStatus('{"percentage": 50, "status": "UNKNOWN", "plugged": "UNPLUGGED"}')?.battery?.discharging).toBe(true);
        expect(parseTermuxBatteryStatus('{"level": 30, "scale": 50, "status": "DISCHARGING", "plugged": "PLUGGED_USB"}')?.battery)
            .toEqual({percent: 60, discharging: true});
    });

    it("drops an unset temperature and rejects what is not battery JSON", () => {
        expect(parseTermuxBatteryStatus('{"percentage": 50, "plugged": "UNPLUGGED", "temperature": -214748364.8}'))
            .toEqual({battery: {percent: 50, discharging: true}});
        expect(parseTermuxBatteryStatus("")).toBeUndefined();
        expect(parseTermuxBatteryStatus("Termux:API is not yet available")).toBeUndefined();
        expect(parseTermuxBatteryStatus("[]")).toBeUndefined();
        expect(parseTermuxBatteryStatus("{}")).toBeUndefined();
    });
});

describe("TermuxSensor", () => {
    it("turns the command's output into a reading", async () => {
        const sensor = new TermuxSensor({run: async () => fixture("termux-battery-status.discharging.json")});
        expect(await sensor.read()).toEqual({
            at: expect.any(Number),
            source: "termux",
            battery: {percent: 83, discharging: true, powerWatts: 1.26},
            thermalZones: [{type: "battery", celsius: 31.2}]
        });
    });

    it("reads nothing, without throwing, when the command is missing", async () => {
        await expect(new TermuxSensor({command: "edge-llm-no-such-termux-command"}).read()).resolves.toBeUndefined();
    });

    it("shares one run between overlapping polls", async () => {
        let runs = 0;
        const sensor = new TermuxSensor({run: async () => {
            runs++;
            await new Promise((resolve) => setTimeout(resolve, 10));
            return '{"percentage": 10, "plugged": "UNPLUGGED"}';
        }});
        const [first, second] = await Promise.all([sensor.read(), sensor.read()]);
        expect(runs).toBe(1);
        expect(first).toBe(second);
        await sensor.read();
        expect(runs).toBe(2);
    });
});
