import type {LlamaContext} from "node-llama-cpp";
import {describe, expect, it} from "vitest";
import {gateFirstSampleAfterDecode} from "./sample-gate.js";

/** node-llama-cpp's native context as far as the gate sees it: methods on a prototype, read-only like N-API's. */
function fakeNativeContext() {
    const events: string[] = [];
    const pending: Array<() => void> = [];
    const proto = {};
    Object.defineProperty(proto, "decodeBatch", {value: async () => { events.push("decode"); }});
    Object.defineProperty(proto, "sampleToken", {
        value: (index: number) => new Promise<number>((resolve) => {
            events.push(`start ${index}`);
            pending.push(() => {
                events.push(`end ${index}`);
                resolve(index);
            });
        })
    });
    const native = Object.create(proto) as {decodeBatch(): Promise<void>; sampleToken(index: number): Promise<number>};
    return {native, events, finishNext: async () => {
        pending.shift()!();
        for (let turn = 0; turn < 5; turn++) await Promise.resolve();
    }};
}

describe("the first sample after a decode runs alone", () => {
    it("holds the batch's other samples until the first has read the outputs, then lets them run side by side", async () => {
        const {native, events, finishNext} = fakeNativeContext();
        expect(gateFirstSampleAfterDecode({_ctx: native} as unknown as LlamaContext)).toBe(true);

        await native.decodeBatch();
        const samples = [native.sampleToken(0), native.sampleToken(1), native.sampleToken(2)];
        await Promise.resolve();
        expect(events).toEqual(["decode", "start 0"]);
        await finishNext();
        expect(events).toEqual(["decode", "start 0", "end 0", "start 1", "start 2"]);
        await finishNext();
        await finishNext();
        expect(await Promise.all(samples)).toEqual([0, 1, 2]);

        // The next batch is gated again; samples without a decode in between are not.
        await native.decodeBatch();
        const next = [native.sampleToken(3), native.sampleToken(4)];
        await Promise.resolve();
        expect(events.slice(-2)).toEqual(["decode", "start 3"]);
        await finishNext();
        await finishNext();
        await Promise.all(next);
        const free = [native.sampleToken(5), native.sampleToken(6)];
        expect(events.slice(-2)).toEqual(["start 5", "start 6"]);
        await finishNext();
        await finishNext();
        await Promise.all(free);
    });

    it("is not installed on a context without node-llama-cpp's native methods", () => {
        expect(gateFirstSampleAfterDecode({_ctx: {}} as unknown as LlamaContext)).toBe(false);
        expect(gateFirstSampleAfterDecode({} as unknown as LlamaContext)).toBe(false);
    });
});
