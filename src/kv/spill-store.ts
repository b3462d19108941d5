import {createHash, randomUUID} from "node:crypto";
import {createReadStream} from "node:fs";
import {mkdir, readdir, readFile, rename, rm, stat, writeFile} from "node:fs/promises";
import path from "node:path";

/** One sequence state on disk: `<id>.state` (llama.cpp's bytes) and `<id>.json` (this). */
export interface SpillEntry {
    version: 1;
    id: string;
    /** Identity of the model and context that wrote the state; another one must never load it. */
    model: string;
    tokens: number[];
    bytes: number;
    sha256: string;
    session?: string;
    createdAt: number;
    lastUsedAt: number;
}

export interface SpillStoreOptions {
    dir: string;
    /** Bytes of state files kept at most; least recently used ones go first. */
    budgetBytes: number;
    /**
     * States kept at most, whatever their size. A small model's states are tiny, so the byte
     * budget alone would let the folder (and the index of every state held in memory) grow by
     * thousands of entries on a busy server. Default 512.
     */
    maxStates?: number;
    model: string;
}

const DEFAULT_MAX_STATES = 512;

export type Rejection = "missing" | "size" | "checksum" | "model";

/**
 * The disk tier of the KV cache: sequence states written with llama.cpp's own serializer plus
 * a JSON sidecar (model identity, tokens, checksum). Everything read back is checked before
 * llama.cpp sees it: loading a state from another model, or a damaged one, can crash the process.
 */
export class SpillStore {
    private readonly entries = new Map<string, SpillEntry>();
    /**
     * mtime of each state file as this process last saw it intact (written by it, or checksummed).
     * A file with that mtime and size is not hashed again: hashing a large model's state on every
     * restore would cost more than the restore. Files adopted from a previous run are hashed once.
     */
    private readonly verified = new Map<string, number>();
    private readonly pins = new Map<string, number>();
    private readonly removeWhenUnpinned = new Set<string>();

    private constructor(private readonly options: SpillStoreOptions) {}

    /** Opens the folder and adopts the states a previous run left for the same model. */
    static async open(options: SpillStoreOptions): Promise<{store: SpillStore; discarded: number}> {
        const store = new SpillStore(options);
        await mkdir(options.dir, {recursive: true});
        let discarded = 0;
        for (const name of await readdir(options.dir)) {
            if (!name.endsWith(".json")) continue;
            const entry = await readSidecar(path.join(options.dir, name));
            // Cheap checks now; the checksum when the entry is first restored.
            const info = entry == null ? null : await stat(store.statePath(entry)).catch(() => null);
            if (entry != null && entry.model === options.model && info?.size === entry.bytes)
                store.entries.set(entry.id, entry);
            else {
                discarded++;
                await store.removeFiles(name.slice(0, -".json".length));
            }
        }
        await store.enforceBudget();
        return {store, discarded};
    }

    get bytes() {
        let total = 0;
        for (const entry of this.entries.values()) total += entry.bytes;
        return total;
    }

    list(): SpillEntry[] {
        return [...this.entries.values()];
    }

    statePath(entry: Pick<SpillEntry, "id">) {
        return path.join(this.options.dir, `${entry.id}.state`);
    }

    /**
     * Stores a state: `write(file)` must write llama.cpp's state to `file`. Entries whose tokens
     * are a prefix of the new ones are dropped: the new state serves every request they could.
     */
    async save(tokens: readonly number[], write: (file: string) => Promise<void>, session?: string): Promise<SpillEntry> {
        const id = randomUUID();
        const file = path.join(this.options.dir, `${id}.state`);
        await write(file);
        const {size, mtimeMs} = await stat(file);
        const now = Date.now();
        const entry: SpillEntry = {
            version: 1, id, model: this.options.model, tokens: [...tokens], bytes: size,
            sha256: await sha256File(file), session, createdAt: now, lastUsedAt: now
        };
        const sidecar = path.join(this.options.dir, `${id}.json`);
        await writeFile(`${sidecar}.partial`, JSON.stringify(entry));
        await rename(`${sidecar}.partial`, sidecar);

        for (const other of this.entries.values())
            if (other.tokens.length <= entry.tokens.length && other.tokens.every((token, index) => token === entry.tokens[index]) &&
                (other.session == null || other.session === session))
                await this.delete(other);
        this.entries.set(id, entry);
        this.verified.set(id, mtimeMs);
        await this.enforceBudget();
        return entry;
    }

    /** Why `entry` must not be loaded, or null when it is intact and belongs to this model. */
    async check(entry: SpillEntry): Promise<Rejection | null> {
        if (entry.model !== this.options.model) return "model";
        const file = this.statePath(entry);
        const info = await stat(file).catch(() => null);
        if (info == null) return "missing";
        if (info.size !== entry.bytes) return "size";
        if (this.verified.get(entry.id) === info.mtimeMs) return null;
        // The file can still go between the stat and the read: a restore that pinned the entry
        // while another restore's unpin was already removing it (the pin cannot stop a removal
        // under way), or a cleaner of /tmp. A cache that cannot be read is a miss, never a failed request.
        const digest = await sha256File(file).catch(() => null);
        if (digest == null) return "missing";
        if (digest !== entry.sha256) return "checksum";
        this.verified.set(entry.id, info.mtimeMs);
        return null;
    }

    touch(entry: SpillEntry) {
        entry.lastUsedAt = Date.now();
    }

    async delete(entry: SpillEntry) {
        this.entries.delete(entry.id);
        this.verified.delete(entry.id);
        // Being loaded into a sequence: the files go when the load is done.
        if (this.pins.has(entry.id)) this.removeWhenUnpinned.add(entry.id);
        else await this.removeFiles(entry.id);
    }

    /**
     * Keeps `entry`'s files on disk until the returned function is called, even if the entry is
     * deleted meanwhile (a newer state that extends it, the budget): a restore in progress must
     * not find its file gone (found by the soak: llama.cpp then kept the sequence's old cells).
     */
    pin(entry: SpillEntry): () => Promise<void> {
        this.pins.set(entry.id, (this.pins.get(entry.id) ?? 0) + 1);
        let unpinned = false;
        return async () => {
            if (unpinned) return;
            unpinned = true;
            const left = this.pins.get(entry.id)! - 1;
            if (left > 0) return void this.pins.set(entry.id, left);
            this.pins.delete(entry.id);
            if (this.removeWhenUnpinned.delete(entry.id)) await this.removeFiles(entry.id);
        };
    }

    private async enforceBudget() {
        const byAge = this.list().sort((a, b) => a.lastUsedAt - b.lastUsedAt);
        let total = this.bytes;
        let count = byAge.length;
        const maxStates = this.options.maxStates ?? DEFAULT_MAX_STATES;
        for (const entry of byAge) {
            if (total <= this.options.budgetBytes && count <= maxStates) break;
            total -= entry.bytes;
            count--;
            await this.delete(entry);
        }
    }

    private async removeFiles(id: string) {
        await rm(path.join(this.options.dir, `${id}.state`), {force: true});
        await rm(path.join(this.options.dir, `${id}.json`), {force: true});
    }
}

async function readSidecar(file: string): Promise<SpillEntry | null> {
    try {
        const entry = JSON.parse(await readFile(file, "utf8")) as SpillEntry;
        const valid = entry.version === 1 && typeof entry.id === "string" && /^[\w-]+$/.test(entry.id) &&
            Array.isArray(entry.tokens) && entry.tokens.every(Number.isInteger) &&
            typeof entry.sha256 === "string" && Number.isInteger(entry.bytes);
        return valid ? entry : null;
    } catch {
        return null;
    }
}

function sha256File(file: string): Promise<string> {
    return new Promise((resolve, reject) => {
        const hash = createHash("sha256");
        createReadStream(file).on("data", (chunk) => hash.update(chunk)).on("error", reject).on("end", () => resolve(hash.digest("hex")));
    });
}
