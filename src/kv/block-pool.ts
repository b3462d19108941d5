/**
 * Accounts a context's KV cells in fixed-size blocks. llama.cpp gives each sequence its own
 * stream of `blocksPerSequence` blocks, so blocks never move between sequences; what the pool
 * tracks is how each sequence's blocks are used:
 *
 *   free ──► used (reserved by a running request: prompt + max_tokens)
 *     ▲           │ request ends
 *     │           ▼
 *     └──── cached (an idle sequence's tokens, reusable by a matching prompt; evictable)
 */
export interface BlockCounts {
    blockSize: number;
    total: number;
    used: number;
    cached: number;
    free: number;
}

interface SequenceBlocks {
    running: boolean;
    /** Blocks promised to the running request. */
    reserved: number;
    /** Blocks holding cached tokens. */
    held: number;
}

export class BlockPool {
    private readonly sequences: SequenceBlocks[];

    constructor(sequenceCount: number, readonly blocksPerSequence: number, readonly blockSize: number) {
        this.sequences = Array.from({length: sequenceCount}, () => ({running: false, reserved: 0, held: 0}));
    }

    blocksFor(tokens: number) {
        return Math.ceil(tokens / this.blockSize);
    }

    /** A request starts on `sequence`, promised room for `tokens` tokens. */
    reserve(sequence: number, tokens: number) {
        const entry = this.sequences[sequence]!;
        entry.running = true;
        entry.reserved = Math.min(this.blocksPerSequence, this.blocksFor(tokens));
    }

    /** The request on `sequence` ended; `heldTokens` stay cached in it. */
    release(sequence: number, heldTokens: number) {
        const entry = this.sequences[sequence]!;
        entry.running = false;
        entry.reserved = 0;
        entry.held = Math.min(this.blocksPerSequence, this.blocksFor(heldTokens));
    }

    counts(): BlockCounts {
        let used = 0;
        let cached = 0;
        for (const entry of this.sequences) {
            if (entry.running) used += Math.max(entry.reserved, entry.held);
            else cached += entry.held;
        }
        const total = this.sequences.length * this.blocksPerSequence;
        return {blockSize: this.blockSize, total, used, cached, free: total - used - cached};
    }
}
