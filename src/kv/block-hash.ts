import {createHash} from "node:crypto";

/** Identifies a full block of tokens together with everything before it (chained hashing). */
export type BlockHash = string & {readonly __brand: "BlockHash"};

/**
 * vLLM-style chained block hash: the hash of a block covers its parent's hash, its tokens and
 * `extra` (the model's identity), so equal hashes mean equal prefixes of the same model.
 */
export function hashBlock(parent: BlockHash | null, tokens: ArrayLike<number>, extra: string): BlockHash {
    const hash = createHash("sha1");
    hash.update(parent ?? extra);
    hash.update(new Uint8Array(Uint32Array.from(tokens).buffer));
    return hash.digest("base64url") as BlockHash;
}

/** Hashes of the full blocks of `tokens`; a trailing partial block has none. */
export function blockHashes(tokens: readonly number[], blockSize: number, extra: string): BlockHash[] {
    const hashes: BlockHash[] = [];
    let parent: BlockHash | null = null;
    for (let start = 0; start + blockSize <= tokens.length; start += blockSize) {
        parent = hashBlock(parent, tokens.slice(start, start + blockSize), extra);
        hashes.push(parent);
    }
    return hashes;
}

/** Length of the common prefix of two token lists. */
export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
    const limit = Math.min(a.length, b.length);
    let common = 0;
    while (common < limit && a[common] === b[common])
        common++;
    return common;
}
