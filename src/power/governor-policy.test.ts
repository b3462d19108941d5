import {describe, expect, it} from "vitest";
import {LevelPolicy, resolveThresholds, type LevelDecision} from "./governor-policy.js";
import type {PowerReading} from "./types.js";

const at = (seconds: number) => seconds * 1000;
const hot = (celsius: number, seconds: number, tripCelsius?: number): PowerReading =>
    ({at: at(seconds), source: "test", thermalZones: [{type: "cpu", celsius, tripCelsius}, {type: "skin", celsius: 30}]});
const battery = (percent: number, discharging: boolean, seconds: number): PowerReading =>
    ({at: at(seconds), source: "test", battery: {percent, discharging}});

/** Feeds one reading per second from `start`; returns every decision. */
function run(policy: LevelPolicy, readings: ((seconds: number) => PowerReading)[], start = 0): LevelDecision[] {
    return readings.map((reading, i) => policy.update(reading(start + i)));
}
const temps = (...values: number[]) => values.map((celsius) => (s: number) => hot(celsius, s));
const levels = (decisions: LevelDecision[]) => decisions.map((decision) => decision.level);

describe("LevelPolicy", () => {
    it("stays nominal while cool, and with no data at all", () => {
        const policy = new LevelPolicy();
        expect(levels(run(policy, temps(40, 45, 50, 48, 52)))).toEqual(Array(5).fill("nominal"));
        expect(policy.update({at: at(10), source: "none"})).toMatchObject({level: "nominal", reason: "no signal above nominal"});
    });

    it("goes up as soon as the smoothed temperature crosses each enter threshold", () => {
        const policy = new LevelPolicy({smoothingHalfLifeMs: 0});
        const decisions = run(policy, temps(60, 69, 71, 79, 81));
        expect(levels(decisions)).toEqual(["nominal", "nominal", "fair", "fair", "serious"]);
        expect(decisions[4]!.reason).toBe("temperature 81.0 °C ≥ 80 (serious)");
        expect(decisions[4]!.since).toBe(at(4));
    });

    it("smooths: a one-poll spike does not change the level, a sustained rise does", () => {
        const policy = new LevelPolicy();
        expect(levels(run(policy, temps(60, 60, 60, 95, 60, 60)))).toEqual(Array(6).fill("nominal"));
        expect(policy.current().smoothed.temperatureCelsius).toBeLessThan(65);

        const rising = run(new LevelPolicy(), temps(60, ...Array(15).fill(95)));
        const firstFair = levels(rising).indexOf("fair");
        const firstSerious = levels(rising).indexOf("serious");
        expect(firstFair).toBeGreaterThan(1);
        expect(firstSerious).toBeGreaterThan(firstFair);
        expect(levels(rising).at(-1)).toBe("critical");
    });

    it("holds a level between its exit and enter thresholds (hysteresis)", () => {
        const policy = new LevelPolicy({smoothingHalfLifeMs: 0});
        const decisions = run(policy, temps(82, 79, 76, 75.5, ...Array(20).fill(77)));
        expect(new Set(levels(decisions))).toEqual(new Set(["serious"]));
        expect(decisions.at(-1)!.reason).toBe("temperature 77.0 °C ≥ 75 (holding serious)");
    });

    it("waits the dwell before stepping down, then steps one level at a time", () => {
        const policy = new LevelPolicy({smoothingHalfLifeMs: 0, minDwellMs: 10_000});
        run(policy, temps(92), 0);
        expect(policy.current().level).toBe("critical");
        // Cool at once: every signal says nominal from t = 1 s.
        const decisions = run(policy, temps(...Array(40).fill(50)), 1);
        const trace = levels(decisions);
        expect(trace.slice(0, 10)).toEqual(Array(10).fill("critical"));
        expect(decisions[5]!).toMatchObject({level: "critical", target: "nominal"});
        expect(decisions[5]!.reason).toMatch(/^holding critical, next step down in 5\.0 s/);
        expect(trace[10]).toBe("serious"); // t = 11 s: 10 s after the target dropped
        expect(trace.indexOf("fair")).toBe(20);
        expect(trace.indexOf("nominal")).toBe(30);
        expect(decisions[30]!.since).toBe(at(31));
    });

    it("restarts the dwell when the target comes back up meanwhile", () => {
        const policy = new LevelPolicy({smoothingHalfLifeMs: 0});
        const trace = levels(run(policy, temps(72, 60, 60, 60, 60, 60, 71, 60, ...Array(12).fill(60))));
        expect(trace.slice(0, 17)).toEqual(Array(17).fill("fair"));
        expect(trace[17]).toBe("nominal"); // 10 s after the reading at t = 7 s
    });

    it("puts a discharging battery at 14% to serious, and relaxes after plugging in", () => {
        const policy = new LevelPolicy();
        expect(policy.update(battery(40, true, 0)).level).toBe("nominal");
        expect(policy.update(battery(29, true, 1)).level).toBe("fair");
        expect(policy.update(battery(14, true, 2))).toMatchObject({level: "serious", reason: "battery 14% on battery ≤ 15% (serious)"});
        expect(policy.update(battery(18, true, 3)).level).toBe("serious"); // ≤ 20: held
        const plugged = run(policy, Array.from({length: 25}, () => (s: number) => battery(18, false, s)), 4);
        expect(levels(plugged).slice(0, 10)).toEqual(Array(10).fill("serious"));
        expect(levels(plugged)[10]).toBe("fair");
        expect(levels(plugged)[20]).toBe("nominal");
    });

    it("keeps a charging battery nominal at any percent", () => {
        expect(new LevelPolicy().update(battery(3, false, 0)).level).toBe("nominal");
    });

    it("puts low-power mode at least at fair, configurably", () => {
        const reading: PowerReading = {at: 0, source: "test", lowPowerMode: true};
        expect(new LevelPolicy().update(reading)).toMatchObject({level: "fair", reason: "low-power mode (fair)"});
        expect(new LevelPolicy({lowPowerModeLevel: "serious"}).update(reading).level).toBe("serious");
        expect(new LevelPolicy({lowPowerModeLevel: null}).update(reading).level).toBe("nominal");
    });

    it("follows the OS's own thermal level as a floor", () => {
        const policy = new LevelPolicy();
        expect(policy.update({at: 0, source: "test", osThermalLevel: "critical", thermalZones: [{type: "cpu", celsius: 40}]}))
            .toMatchObject({level: "critical", reason: "OS thermal level critical"});
        expect(new LevelPolicy({followOsThermalLevel: false}).update({at: 0, source: "test", osThermalLevel: "critical"}).level).toBe("nominal");
    });

    it("uses the fraction of a zone's trip point", () => {
        const policy = new LevelPolicy({smoothingHalfLifeMs: 0, absoluteZones: "without-trip"});
        // A battery zone with a 45 °C trip: 40 °C is 89%, 42 °C is 93%.
        expect(policy.update(hot(40, 0, 45))).toMatchObject({level: "fair", reason: "cpu at 89% of its 45 °C trip point ≥ 85% (fair)"});
        expect(policy.update(hot(42, 1, 45)).level).toBe("serious");
        expect(policy.update(hot(44, 2, 45)).level).toBe("critical");
        // A laptop package at 88 °C of a 105 °C trip (84%) only counts through the fraction by default.
        expect(new LevelPolicy({smoothingHalfLifeMs: 0}).update(hot(88, 0, 105)).level).toBe("nominal");
        expect(new LevelPolicy({smoothingHalfLifeMs: 0, absoluteZones: "all"}).update(hot(88, 0, 105)).level).toBe("serious");
    });

    it("only reads CPU frequency when configured", () => {
        const slow: PowerReading = {at: 0, source: "test", cpuFrequencyRatio: 0.4};
        expect(new LevelPolicy().update(slow).level).toBe("nominal");
        expect(new LevelPolicy({cpuFrequency: {below: 0.6, level: "fair"}}).update(slow).level).toBe("fair");
    });

    it("lets a forced level win at once both ways, and clearing it return to the computed level", () => {
        const policy = new LevelPolicy({smoothingHalfLifeMs: 0});
        run(policy, temps(82, 82), 0);
        expect(policy.setOverride("nominal", at(2))).toMatchObject({level: "nominal", forced: "nominal", reason: "forced nominal (manual override)"});
        expect(policy.update(hot(95, 3)).level).toBe("nominal");
        expect(policy.setOverride("critical", at(4)).level).toBe("critical");
        expect(policy.update(hot(60, 5)).level).toBe("critical");
        // Cleared: straight to what the signals say, no dwell.
        expect(policy.setOverride(null, at(6))).toMatchObject({level: "nominal", forced: null});

        const fromReading = new LevelPolicy();
        expect(fromReading.update({at: 0, source: "manual", forcedLevel: "serious", battery: {percent: 90, discharging: true}}).level).toBe("serious");
        expect(fromReading.update({at: 1, source: "manual", battery: {percent: 90, discharging: true}}).level).toBe("nominal");
    });

    it("rejects thresholds whose exit is on the wrong side of enter", () => {
        expect(() => resolveThresholds({temperatureCelsius: {fair: {enter: 70, exit: 75}}})).toThrow(RangeError);
        expect(() => resolveThresholds({batteryPercent: {serious: {enter: 40, exit: 45}}})).toThrow(RangeError);
        expect(resolveThresholds({temperatureCelsius: {fair: {enter: 60, exit: 55}}}).temperatureCelsius.serious).toEqual({enter: 80, exit: 75});
    });
});
