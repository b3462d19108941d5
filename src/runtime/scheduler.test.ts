import {describe, expect, it} from "vitest";
import {SlotScheduler} from "./scheduler.js";
import {QueueFullError, ShuttingDownError} from "./errors.js";

const first = (free: readonly string[]) => free[0]!;

describe("SlotScheduler", () => {
    it("hands out free slots at once and queues the rest in order", async () => {
        const scheduler = new SlotScheduler(["a", "b"], {maxQueued: 2});
        expect(await scheduler.acquire(first)).toBe("a");
        expect(await scheduler.acquire(first)).toBe("b");
        const order: string[] = [];
        const third = scheduler.acquire(first).then((slot) => order.push(`third:${slot}`));
        const fourth = scheduler.acquire(first).then((slot) => order.push(`fourth:${slot}`));
        expect(scheduler.queued).toBe(2);
        scheduler.release("b");
        scheduler.release("a");
        await Promise.all([third, fourth]);
        expect(order).toEqual(["third:b", "fourth:a"]);
    });

    it("refuses past the queue bound", async () => {
        const scheduler = new SlotScheduler(["a"], {maxQueued: 1});
        await scheduler.acquire(first);
        void scheduler.acquire(first);
        await expect(scheduler.acquire(first)).rejects.toBeInstanceOf(QueueFullError);
    });

    it("lets the caller pick among free slots", async () => {
        const scheduler = new SlotScheduler(["a", "b", "c"], {maxQueued: 0});
        expect(await scheduler.acquire((free) => free.find((slot) => slot === "c")!)).toBe("c");
        expect(scheduler.freeSlots).toBe(2);
    });

    it("drops a waiter whose signal aborts, without taking a slot", async () => {
        const scheduler = new SlotScheduler(["a"], {maxQueued: 4});
        await scheduler.acquire(first);
        const controller = new AbortController();
        const waiting = scheduler.acquire(first, controller.signal);
        controller.abort(new Error("client left"));
        await expect(waiting).rejects.toThrow("client left");
        expect(scheduler.queued).toBe(0);
        scheduler.release("a");
        expect(scheduler.freeSlots).toBe(1);
    });

    it("fails waiters and refuses new work once closed", async () => {
        const scheduler = new SlotScheduler(["a"], {maxQueued: 4});
        await scheduler.acquire(first);
        const waiting = scheduler.acquire(first);
        scheduler.close();
        await expect(waiting).rejects.toBeInstanceOf(ShuttingDownError);
        await expect(scheduler.acquire(first)).rejects.toBeInstanceOf(ShuttingDownError);
    });
});

describe("SlotScheduler capacity", () => {
    it("runs at most `capacity` slots; raising it starts waiting requests at once", async () => {
        const scheduler = new SlotScheduler(["a", "b", "c"], {maxQueued: 4});
        scheduler.setCapacity(1);
        expect(await scheduler.acquire(first)).toBe("a");
        let second: string | undefined;
        void scheduler.acquire(first).then((slot) => (second = slot));
        await Promise.resolve();
        expect(second).toBeUndefined();
        expect(scheduler.queued).toBe(1);
        scheduler.setCapacity(3);
        await Promise.resolve();
        expect(second).toBe("b");
        expect(scheduler.running).toBe(2);
    });

    it("lowering it never takes a slot from a running request", async () => {
        const scheduler = new SlotScheduler(["a", "b"], {maxQueued: 4});
        await scheduler.acquire(first);
        await scheduler.acquire(first);
        scheduler.setCapacity(1);
        expect(scheduler.running).toBe(2);
        const third = scheduler.acquire(first);
        scheduler.release("a");
        expect(scheduler.queued).toBe(1);
        scheduler.release("b");
        expect(await third).toBe("a");
    });
});
