import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {runSoak} from "../scripts/soak/soak.js";
import {startServeProcess, type ServeProcess} from "../scripts/soak/server-process.js";
import {testModelPath} from "./helpers/model.js";

/**
 * The CI version of scripts/soak.ts: 8 clients over mixed endpoints for 30 s against a real
 * `edge-llm serve` process. The 10-minute run (docs/reliability.md) is the one held to < 5%
 * RSS growth; 30 s is too short for that (V8's heap swings by tens of MiB between collections),
 * so this one catches gross leaks (memory outside V8's heap), errors and stalls.
 */
const DURATION_MS = Number(process.env.EDGE_LLM_SOAK_MS ?? 30_000);

let server: ServeProcess;
beforeAll(async () => {
    server = await startServeProcess(["--model", testModelPath, "--parallel", "4", "--ctx-size", "512"]);
});
afterAll(async () => {
    expect(await server?.stop()).toBe(0);
});

describe("soak (short)", () => {
    it("8 clients over mixed endpoints: no errors, first tokens keep coming, memory stays put", async () => {
        const report = await runSoak({url: server.url, model: "default", clients: 8, durationMs: DURATION_MS, intervalMs: 5000, warmupMs: 5000});
        console.log(`soak: ${report.requests} requests, ${report.errors} errors, RSS ${(report.rssAfterWarmupBytes / 2 ** 20).toFixed(1)} → ` +
            `${(report.rssEndBytes / 2 ** 20).toFixed(1)} MiB (${(report.rssGrowth * 100).toFixed(1)}%), p99 TTFT per interval ` +
            `${report.intervals.map((interval) => interval.ttftP99Ms).join(", ")} ms`);
        expect(report.errorExamples).toEqual([]);
        expect(report.errors).toBe(0);
        expect(Object.keys(report.requestsByOperation).length).toBe(8);
        // Traffic enough to mean something: ~3,000 requests on stories260K, ~170 on the synthetic
        // fallback model with the rest of the suite running beside it.
        expect(report.requests).toBeGreaterThan(100);
        expect(report.intervals.length).toBe(Math.floor(DURATION_MS / 5000));
        for (const interval of report.intervals) {
            expect(interval.requests).toBeGreaterThan(0);
            expect(interval.ttftP99Ms).toBeGreaterThan(0);
            expect(interval.ttftP99Ms).toBeLessThan(3000);
        }
        // Memory outside V8's heap: a native leak (llama.cpp states, buffers) grows it, while the
        // heap itself swings by tens of MiB between collections (more, the more requests a second).
        // RSS minus the committed heap leaves V8's free pages out too (RSS minus heap in use kept
        // them and measured 22–53% over 30 s as the request rate rose past 3,000). A gross leak
        // (~3,000 requests in 30 s) goes far past 50%; the 10-minute soak (docs/reliability.md)
        // is the gate for 5%.
        const warm = report.intervals.find((interval) => interval.rssBytes === report.rssAfterWarmupBytes)!;
        const last = report.intervals.at(-1)!;
        const nativeGrowth = (last.rssBytes - last.heapTotalBytes) / (warm.rssBytes - warm.heapTotalBytes) - 1;
        expect(nativeGrowth).toBeLessThan(0.5);
        expect(last.heapUsedBytes).toBeLessThan(256 * 2 ** 20);
    }, DURATION_MS + 30_000);
});
