import type {BlockHash} from "./block-hash.js";

export interface PrefixMatch<Key> {
    /** Entries that hold the longest matching run of full blocks. */
    keys: Key[];
    /** Full blocks matched. */
    blocks: number;
}

/**
 * Maps chained block hashes to the entries (live sequences, spilled states) that hold them.
 * Because hashes are chained, an entry holding block i holds blocks 0..i-1 as well, so the
 * longest match is found by walking the prompt's hashes until no entry has the next one.
 */
export class PrefixIndex<Key> {
    private readonly byHash = new Map<BlockHash, Set<Key>>();
    private readonly byKey = new Map<Key, readonly BlockHash[]>();

    get size() {
        return this.byKey.size;
    }

    /** Sets what `key` holds (replacing what it held before). */
    set(key: Key, hashes: readonly BlockHash[]) {
        this.delete(key);
        this.byKey.set(key, hashes);
        for (const hash of hashes) {
            let keys = this.byHash.get(hash);
            if (keys == null) {
                keys = new Set();
                this.byHash.set(hash, keys);
            }
            keys.add(key);
        }
    }

    delete(key: Key) {
        const hashes = this.byKey.get(key);
        if (hashes == null) return;
        this.byKey.delete(key);
        for (const hash of hashes) {
            const keys = this.byHash.get(hash);
            keys?.delete(key);
            if (keys?.size === 0) this.byHash.delete(hash);
        }
    }

    /** Entries sharing the most full blocks with `hashes`, optionally only those `accept` allows. */
    longest(hashes: readonly BlockHash[], accept: (key: Key) => boolean = () => true): PrefixMatch<Key> {
        let best: PrefixMatch<Key> = {keys: [], blocks: 0};
        for (let index = 0; index < hashes.length; index++) {
            const keys = [...(this.byHash.get(hashes[index]!) ?? [])].filter(accept);
            if (keys.length === 0) break;
            best = {keys, blocks: index + 1};
        }
        return best;
    }
}
