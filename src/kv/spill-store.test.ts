import {mkdir, mkdtemp, readdir, rm, stat, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterEach, beforeEach, describe, expect, it} from "vitest";
import {SpillStore} from "./spill-store.js";

let dir: string;
beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-spill-"));
});
afterEach(async () => {
    await rm(dir, {recursive: true, force: true});
});

const write = (bytes: number) => (file: string) => writeFile(file, Buffer.alloc(bytes, 7));

describe("SpillStore budgets", () => {
    it("keeps at most maxStates states, dropping the least recently used, files included", async () => {
        const {store} = await SpillStore.open({dir, budgetBytes: 1024 ** 3, maxStates: 3, model: "m"});
        const saved = [];
        for (let index = 0; index < 5; index++) {
            saved.push(await store.save([100 + index, 1, 2], write(16)));
            await new Promise((resolve) => setTimeout(resolve, 2));
        }
        expect(store.list().map((entry) => entry.id).sort()).toEqual(saved.slice(2).map((entry) => entry.id).sort());
        expect((await readdir(dir)).length).toBe(6);
    });

    it("keeps within the byte budget", async () => {
        const {store} = await SpillStore.open({dir, budgetBytes: 100, model: "m"});
        for (let index = 0; index < 5; index++) await store.save([index, 9], write(40));
        expect(store.bytes).toBeLessThanOrEqual(100);
        expect(store.list()).toHaveLength(2);
    });

    it("a reopened folder obeys a lower limit", async () => {
        const first = await SpillStore.open({dir, budgetBytes: 1024 ** 3, model: "m"});
        for (let index = 0; index < 4; index++) await first.store.save([index, 5], write(8));
        const {store} = await SpillStore.open({dir, budgetBytes: 1024 ** 3, maxStates: 1, model: "m"});
        expect(store.list()).toHaveLength(1);
        expect((await readdir(dir)).length).toBe(2);
    });
});

describe("SpillStore pins", () => {
    it("keeps a pinned state's file until it is unpinned, though a newer state that extends it deletes the entry", async () => {
        const {store} = await SpillStore.open({dir, budgetBytes: 1024 ** 3, model: "m"});
        const older = await store.save([1, 2, 3], write(16));
        const unpin = store.pin(older);
        await store.save([1, 2, 3, 4], write(16));
        expect(store.list().map((entry) => entry.id)).not.toContain(older.id);
        expect(await store.check(older)).toBeNull(); // a restore in progress still finds its file
        await unpin();
        await unpin(); // twice is once
        expect(await store.check(older)).toBe("missing");
    });
});

describe("SpillStore check", () => {
    it("calls a state it cannot read a miss instead of failing (soak: a 500 from ENOENT mid-check)", async () => {
        // A directory where the state file was, of the size the entry records: stat passes, the read fails.
        const probe = path.join(dir, "probe");
        await mkdir(probe);
        const {size} = await stat(probe);
        const {store} = await SpillStore.open({dir, budgetBytes: 1024 ** 3, model: "m"});
        const entry = await store.save([1, 2, 3], write(size));
        await rm(store.statePath(entry));
        await mkdir(store.statePath(entry));
        expect(await store.check(entry)).toBe("missing");
    });
});
