/**
 * Keeps speculation paying. Two controls:
 * - the draft length k follows acceptance (all accepted: k+1; none: k-1);
 * - a throughput check: tokens per millisecond of drafted steps against plain steps. When
 *   drafting is slower than plain decoding (low acceptance, or a model so small that verifying
 *   costs more than it saves), drafting pauses; pauses double while it keeps losing, so the
 *   probes that find out cost less and less and the worst case approaches plain decoding.
 */
export interface AcceptanceOptions {
    /** Draft length bounds. Default 1..16, starting at 4 (a batch of 16 still costs far less than 16 single steps on a memory-bound model). */
    minK?: number;
    maxK?: number;
    initialK?: number;
    /** Drafting must beat plain throughput by this factor to continue; above 1 because a plain step inside the drafting loop is itself a little slower than the plain decode loop. Default 1.1. */
    minSpeedup?: number;
    /** Plain tokens decoded first (to know the baseline) and after the first loss. Default 16. */
    probeTokens?: number;
    /** Longest pause, in tokens. Default 1024. */
    maxPauseTokens?: number;
}

const EMA = 0.3;

export class AcceptanceTracker {
    private k: number;
    private pausedFor: number;
    private nextPause: number;
    private plainRate?: number;
    private draftRate?: number;
    drafted = 0;
    accepted = 0;
    private readonly options: Required<AcceptanceOptions>;

    constructor(options: AcceptanceOptions = {}) {
        this.options = {minK: 1, maxK: 16, initialK: 4, minSpeedup: 1.1, probeTokens: 16, maxPauseTokens: 1024, ...options};
        this.k = this.options.initialK;
        this.pausedFor = this.options.probeTokens;
        this.nextPause = this.options.probeTokens;
    }

    /** Plain tokens left in the current pause. */
    pausedTokens(): number {
        return this.pausedFor;
    }

    /** How many tokens to draft now; 0 while paused. */
    nextK(): number {
        return this.pausedFor > 0 ? 0 : this.k;
    }

    /** A plain step produced `tokens` tokens in `ms`. */
    plain(tokens: number, ms: number) {
        this.pausedFor = Math.max(0, this.pausedFor - tokens);
        if (ms > 0) this.plainRate = blend(this.plainRate, tokens / ms);
    }

    /** A verification step: `accepted` of `drafted` draft tokens matched, plus the target's own token, in `ms`. */
    step(drafted: number, accepted: number, ms: number) {
        this.drafted += drafted;
        this.accepted += accepted;
        if (accepted === drafted) this.k = Math.min(this.options.maxK, this.k + 1);
        else if (accepted === 0) this.k = Math.max(this.options.minK, this.k - 1);
        if (ms > 0) this.draftRate = blend(this.draftRate, (accepted + 1) / ms);
        if (this.plainRate != null && this.draftRate != null && this.draftRate < this.options.minSpeedup * this.plainRate) {
            this.pausedFor = this.nextPause;
            this.nextPause = Math.min(this.options.maxPauseTokens, this.nextPause * 2);
            this.draftRate = undefined;
            // The next probe starts small: a long draft is the expensive way to find out again.
            this.k = Math.max(this.options.minK, Math.min(this.k, 2));
        } else if (this.draftRate != null && this.plainRate != null)
            this.nextPause = this.options.probeTokens;
    }
}

function blend(previous: number | undefined, value: number) {
    return previous == null ? value : (1 - EMA) * previous + EMA * value;
}
