import {mkdir, mkdtemp, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import WebSocket from "ws";
import {PowerService} from "../src/power/service.js";
import type {PowerLevel} from "../src/power/types.js";
import {startTestServer, type TestServer} from "./helpers/server.js";

const ADMIN_TOKEN = "a-long-enough-admin-token";
let server: TestServer;
let power: PowerService;
let sysfs: string;

/** Writes the fake sysfs tree's CPU temperature, as the kernel would. */
async function setTemperature(celsius: number) {
    await writeFile(path.join(sysfs, "class/thermal/thermal_zone0/temp"), `${Math.round(celsius * 1000)}\n`);
}

async function waitForLevel(level: PowerLevel, timeoutMs = 3000) {
    const start = performance.now();
    while (performance.now() - start < timeoutMs) {
        if ((await power.poll()).level === level) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`level stayed ${power.status().level}, expected ${level}`);
}

async function complete(maxTokens: number) {
    const started = performance.now();
    const response = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({model: server.modelId, prompt: "Once upon a time", max_tokens: maxTokens, temperature: 0})
    });
    return {status: response.status, headers: response.headers, body: await response.json() as Record<string, any>, ms: performance.now() - started};
}

beforeAll(async () => {
    sysfs = await mkdtemp(path.join(os.tmpdir(), "edge-llm-sysfs-"));
    await mkdir(path.join(sysfs, "class/thermal/thermal_zone0"), {recursive: true});
    await writeFile(path.join(sysfs, "class/thermal/thermal_zone0/type"), "cpu-skin\n");
    await setTemperature(40);
    server = await startTestServer({
        parallel: 2,
        contextSize: 512,
        adminToken: ADMIN_TOKEN,
        power: (runtime) => (power = new PowerService({
            runtime,
            sensorRoot: sysfs,
            pollIntervalMs: 50,
            // No smoothing and a short dwell keep the test quick; the policy's own tests cover both.
            thresholds: {smoothingHalfLifeMs: 0, minDwellMs: 150}
        }).start())
    });
});
afterAll(() => server?.stop());

describe("a live server on a device that heats up and cools down", () => {
    it("throttles at serious, refuses at critical, and recovers full speed when cool", async () => {
        const socket = new WebSocket(`${server.url.replace("http", "ws")}/v1/ws`);
        const powerFrames: {level: string}[] = [];
        socket.on("message", (data) => {
            const frame = JSON.parse(data.toString());
            if (frame.type === "power") powerFrames.push(frame);
        });
        await new Promise((resolve) => socket.once("open", resolve));

        const cool = await complete(40);
        expect(cool.status).toBe(200);
        expect(cool.ms).toBeLessThan(400);

        await setTemperature(83);
        await waitForLevel("serious");
        // serious: 8 tok/s per stream, one request at a time, max_tokens capped at 512.
        let most = 0;
        const watcher = setInterval(() => (most = Math.max(most, server.runtime.health().slots!.running)), 5);
        const [first, second] = await Promise.all([complete(9), complete(9)]);
        clearInterval(watcher);
        expect([first.status, second.status]).toEqual([200, 200]);
        expect(most).toBe(1);
        expect(first.body.timings.predicted_per_second).toBeLessThanOrEqual(8.5);
        expect(Math.min(first.ms, second.ms)).toBeGreaterThan(900);

        const health = await (await fetch(`${server.url}/health`)).json() as Record<string, any>;
        expect(health.power).toMatchObject({level: "serious", limits: {maxConcurrent: 1, tokensPerSecond: 8, maxTokens: 512}});
        expect(health.power.reason).toContain("83");
        expect(health.power.reading.thermalZones[0]).toMatchObject({type: "cpu-skin", celsius: 83});

        await setTemperature(95);
        await waitForLevel("critical");
        const refused = await complete(5);
        expect(refused.status).toBe(503);
        expect(refused.headers.get("retry-after")).toBe("30");
        expect(refused.body.error.code).toBe("throttled");
        expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(/^edge_llm_power_level 3$/m);

        await setTemperature(40);
        await waitForLevel("nominal", 5000);
        const recovered = await complete(40);
        expect(recovered.status).toBe(200);
        expect(recovered.ms).toBeLessThan(400);
        expect(recovered.body.choices[0].text).toBe(cool.body.choices[0].text);
        expect(server.runtime.health().limits).toEqual({speculative: true});

        // Every level change reached the WebSocket client, stepping down one level at a time.
        expect(powerFrames.map((frame) => frame.level)).toEqual(["serious", "critical", "serious", "fair", "nominal"]);
        socket.close();
    });

    it("lets an app force a level through the authenticated admin endpoint", async () => {
        const post = (body: unknown, token = ADMIN_TOKEN) => fetch(`${server.url}/admin/power`, {
            method: "POST", headers: {authorization: `Bearer ${token}`}, body: JSON.stringify(body)
        });
        expect((await post({level: "critical"}, "wrong-token")).status).toBe(401);
        expect((await post({level: "boiling"})).status).toBe(400);
        const forced = await post({level: "critical"});
        expect(forced.status).toBe(200);
        expect((await complete(3)).status).toBe(503);
        expect(((await post({level: null})).status)).toBe(200);
        expect(power.status().level).toBe("nominal");
        expect((await complete(3)).status).toBe(200);
    });
});
