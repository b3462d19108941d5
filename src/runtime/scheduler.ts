import {QueueFullError, ShuttingDownError} from "./errors.js";

export interface SchedulerOptions {
    /** Requests that may wait for a slot; past this, new requests are refused (429). */
    maxQueued: number;
}

interface Waiter<Slot> {
    resolve(slot: Slot): void;
    reject(error: unknown): void;
    pick(free: readonly Slot[]): Slot;
}

/**
 * Hands out a fixed set of slots (sequences) to requests, first come first served, with a
 * bounded wait queue. A waiting request whose signal aborts leaves the queue at once.
 * The caller chooses which free slot suits it (e.g. the one holding its prefix) via `pick`.
 */
export class SlotScheduler<Slot> {
    private readonly free: Slot[];
    private readonly queue: Waiter<Slot>[] = [];
    private readonly total: number;
    /** Slots that may run at once (a power limit can lower it below `total`). */
    private capacity: number;
    private closed = false;

    constructor(slots: readonly Slot[], private readonly options: SchedulerOptions) {
        this.free = [...slots];
        this.total = slots.length;
        this.capacity = slots.length;
    }

    get running() {
        return this.total - this.free.length;
    }

    /**
     * Limits how many slots run at once. Lowering it never stops a running request; raising it
     * hands free slots to waiting requests at once.
     */
    setCapacity(capacity: number) {
        this.capacity = Math.max(1, Math.min(this.total, capacity));
        this.handOut();
    }

    get freeSlots() {
        return this.free.length;
    }

    get queued() {
        return this.queue.length;
    }

    /** Resolves with a slot, which the caller must give back with `release()`. */
    acquire(pick: (free: readonly Slot[]) => Slot, signal?: AbortSignal): Promise<Slot> {
        if (this.closed)
            return Promise.reject(new ShuttingDownError());
        signal?.throwIfAborted();
        if (this.canStart() && this.queue.length === 0)
            return Promise.resolve(this.take(pick));
        if (this.queue.length >= this.options.maxQueued)
            return Promise.reject(new QueueFullError(this.options.maxQueued));

        return new Promise<Slot>((resolve, reject) => {
            const onAbort = () => {
                const at = this.queue.indexOf(waiter);
                if (at !== -1) this.queue.splice(at, 1);
                reject(signal!.reason);
            };
            const waiter: Waiter<Slot> = {
                pick,
                resolve: (slot) => {
                    signal?.removeEventListener("abort", onAbort);
                    resolve(slot);
                },
                reject: (error) => {
                    signal?.removeEventListener("abort", onAbort);
                    reject(error);
                }
            };
            signal?.addEventListener("abort", onAbort, {once: true});
            this.queue.push(waiter);
        });
    }

    release(slot: Slot) {
        this.free.push(slot);
        this.handOut();
    }

    private canStart() {
        return this.free.length > 0 && this.running < this.capacity;
    }

    private handOut() {
        while (this.queue.length > 0 && this.canStart()) {
            const next = this.queue.shift()!;
            next.resolve(this.take(next.pick));
        }
    }

    /** Refuses new work and fails everything still waiting. */
    close() {
        this.closed = true;
        for (const waiter of this.queue.splice(0))
            waiter.reject(new ShuttingDownError());
    }

    private take(pick: (free: readonly Slot[]) => Slot): Slot {
        const slot = pick(this.free);
        this.free.splice(this.free.indexOf(slot), 1);
        return slot;
    }
}
