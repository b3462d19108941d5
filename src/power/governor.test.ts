import {afterEach, describe, expect, it, vi} from "vitest";
import {PowerGovernor, type PowerChange} from "./governor.js";
import {defaultPowerLimits} from "./limits.js";
import type {PowerReading, PowerSensor} from "./types.js";

/** A sensor that plays back `script`, one entry per read, repeating the last one. */
function scripted(script: (Partial<PowerReading> | undefined | Error)[], name = "fake"): PowerSensor & {reads: number} {
    return {
        name,
        reads: 0,
        async read() {
            const entry = script[Math.min(this.reads++, script.length - 1)];
            if (entry instanceof Error) throw entry;
            return entry == null ? undefined : {at: 0, source: name, ...entry};
        }
    };
}
const celsius = (value: number): Partial<PowerReading> => ({thermalZones: [{type: "cpu", celsius: value}]});

function governor(sensors: PowerSensor[], options: {dwell?: number} = {}) {
    let clock = 0;
    const gov = new PowerGovernor({
        sensors,
        now: () => clock,
        thresholds: {smoothingHalfLifeMs: 0, minDwellMs: options.dwell ?? 2000}
    });
    const changes: PowerChange[] = [];
    gov.onChange((change) => changes.push(change));
    const tick = async (ms = 1000) => {
        clock += ms;
        return gov.pollOnce();
    };
    return {gov, changes, tick};
}

afterEach(() => {
    vi.useRealTimers();
});

describe("PowerGovernor", () => {
    it("emits a change only when the level changes, with the right previous", async () => {
        const {gov, changes, tick} = governor([scripted([celsius(50), celsius(72), celsius(73), celsius(85), celsius(85), celsius(50)])]);
        for (let i = 0; i < 10; i++) await tick();
        expect(changes.map(({previous, level}) => `${previous}→${level}`)).toEqual(["nominal→fair", "fair→serious", "serious→fair", "fair→nominal"]);
        expect(changes[1]).toMatchObject({reason: "temperature 85.0 °C ≥ 80 (serious)", limits: defaultPowerLimits.serious});
        expect(changes[1]!.reading?.thermalZones?.[0]?.celsius).toBe(85);
        const state = gov.current();
        expect(state).toMatchObject({level: "nominal", override: null, limits: defaultPowerLimits.nominal, smoothed: {temperatureCelsius: 50}});
        expect(state.lastPollMs).toBeGreaterThanOrEqual(0);
        expect(state.averagePollMs).toBeGreaterThanOrEqual(0);
    });

    it("applies setOverride at once and emits it", async () => {
        const {gov, changes, tick} = governor([scripted([celsius(50)])]);
        await tick();
        gov.setOverride("critical");
        expect(changes).toEqual([expect.objectContaining({level: "critical", previous: "nominal", limits: defaultPowerLimits.critical})]);
        expect(gov.current()).toMatchObject({level: "critical", override: "critical", reason: "forced critical (manual override)"});
        await tick();
        expect(changes).toHaveLength(1);
        gov.setOverride(null);
        expect(changes[1]).toMatchObject({level: "nominal", previous: "critical"});
        expect(gov.current().override).toBeNull();
    });

    it("takes an override from its options before the first poll", () => {
        const gov = new PowerGovernor({sensors: [], override: "serious"});
        expect(gov.current()).toMatchObject({level: "serious", override: "serious", limits: defaultPowerLimits.serious});
    });

    it("stays nominal when sensors return nothing, reject, throw or hang", async () => {
        const errors: string[] = [];
        const hung: PowerSensor = {name: "hung", read: () => new Promise(() => {})};
        const throws: PowerSensor = {name: "throws", read: () => { throw new Error("sync"); }};
        const gov = new PowerGovernor({
            sensors: [scripted([undefined], "empty"), scripted([new Error("EACCES")], "broken"), throws, hung],
            sensorTimeoutMs: 20,
            onError: (_, where) => errors.push(where)
        });
        const state = await gov.pollOnce();
        expect(state).toMatchObject({level: "nominal", reason: "no signal above nominal", reading: undefined});
        expect(errors.sort()).toEqual(["sensor broken", "sensor hung", "sensor throws"]);
    });

    it("uses the first reading by default and an injected merge when given", async () => {
        const sensors = () => [scripted([undefined], "a"), scripted([celsius(75)], "b"), scripted([celsius(95)], "c")];
        expect((await new PowerGovernor({sensors: sensors()}).pollOnce()).reading?.source).toBe("b");
        const hottest = (readings: PowerReading[]) => readings.at(-1);
        expect((await new PowerGovernor({sensors: sensors(), merge: hottest, thresholds: {smoothingHalfLifeMs: 0}}).pollOnce()).level).toBe("critical");
    });

    it("shares a poll in flight between concurrent callers", async () => {
        const sensor = scripted([celsius(50)]);
        const gov = new PowerGovernor({sensors: [sensor]});
        await Promise.all([gov.pollOnce(), gov.pollOnce(), gov.pollOnce()]);
        expect(sensor.reads).toBe(1);
    });

    it("keeps going when a change listener throws", async () => {
        const errors: string[] = [];
        const gov = new PowerGovernor({sensors: [scripted([celsius(95)])], thresholds: {smoothingHalfLifeMs: 0}, onError: (_, where) => errors.push(where)});
        const seen: string[] = [];
        gov.onChange(() => { throw new Error("listener"); });
        gov.onChange((change) => seen.push(change.level));
        await gov.pollOnce();
        expect(seen).toEqual(["critical"]);
        expect(errors).toEqual(["change listener"]);
    });

    it("polls every pollIntervalMs after start and leaves no timer after stop", async () => {
        vi.useFakeTimers();
        const sensor = scripted([celsius(50)]);
        const gov = new PowerGovernor({sensors: [sensor], pollIntervalMs: 1000});
        gov.start();
        gov.start();
        await vi.advanceTimersByTimeAsync(0);
        expect(sensor.reads).toBe(1);
        await vi.advanceTimersByTimeAsync(3000);
        expect(sensor.reads).toBe(4);
        gov.stop();
        expect(vi.getTimerCount()).toBe(0);
        await vi.advanceTimersByTimeAsync(5000);
        expect(sensor.reads).toBe(4);
    });

    it("does not reschedule when stopped during a poll", async () => {
        vi.useFakeTimers();
        let release!: () => void;
        const slow: PowerSensor = {name: "slow", read: () => new Promise((resolve) => (release = () => resolve(undefined)))};
        const gov = new PowerGovernor({sensors: [slow], sensorTimeoutMs: 60_000});
        gov.start();
        await vi.advanceTimersByTimeAsync(0);
        gov.stop();
        release();
        await vi.advanceTimersByTimeAsync(0);
        expect(vi.getTimerCount()).toBe(0);
    });

    it("unrefs its timer so it never keeps the process alive", async () => {
        const gov = new PowerGovernor({sensors: [scripted([celsius(50)])], pollIntervalMs: 60_000});
        gov.start();
        await gov.pollOnce();
        const timer = (gov as unknown as {timer?: NodeJS.Timeout}).timer;
        expect(timer?.hasRef()).toBe(false);
        gov.stop();
    });
});
