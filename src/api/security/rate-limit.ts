/**
 * Token buckets, one per client: each holds up to `burst` requests and refills at
 * `requestsPerMinute`. A request takes one token; an empty bucket says how long until the next
 * token (→ 429 + Retry-After).
 */

export interface RateLimitOptions {
    /** Sustained requests per minute per client. */
    requestsPerMinute: number;
    /** Requests a client may make at once after being idle. Default: a tenth of a minute's worth, at least 1. */
    burst?: number;
    /** Buckets kept at most; full (idle) buckets are dropped first, so memory stays bounded. Default 10,000. */
    maxClients?: number;
    /** Clock in milliseconds (tests). Default `performance.now`. */
    now?: () => number;
}

export type RateDecision = {allowed: true} | {allowed: false; retryAfterSeconds: number};

interface Bucket {
    tokens: number;
    updatedAt: number;
}

export class RateLimiter {
    private readonly buckets = new Map<string, Bucket>();
    private readonly perMs: number;
    readonly burst: number;
    private readonly maxClients: number;
    private readonly now: () => number;

    constructor(options: RateLimitOptions) {
        if (!(options.requestsPerMinute > 0))
            throw new RangeError(`requestsPerMinute must be positive, got ${options.requestsPerMinute}`);
        this.perMs = options.requestsPerMinute / 60_000;
        this.burst = options.burst ?? Math.max(1, Math.floor(options.requestsPerMinute / 10));
        if (!(this.burst >= 1)) throw new RangeError(`burst must be at least 1, got ${this.burst}`);
        this.maxClients = options.maxClients ?? 10_000;
        this.now = options.now ?? (() => performance.now());
    }

    /** Takes one request from `client`'s bucket. */
    take(client: string): RateDecision {
        const now = this.now();
        let bucket = this.buckets.get(client);
        if (bucket == null) {
            this.makeRoom(now);
            bucket = {tokens: this.burst, updatedAt: now};
        } else {
            bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.updatedAt) * this.perMs);
            bucket.updatedAt = now;
            // Re-inserted: the map's order is least recently used first.
            this.buckets.delete(client);
        }
        this.buckets.set(client, bucket);
        if (bucket.tokens >= 1) {
            bucket.tokens -= 1;
            return {allowed: true};
        }
        return {allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / this.perMs / 1000))};
    }

    get clients() {
        return this.buckets.size;
    }

    /** Drops buckets that have refilled (they behave like new ones), then the least recently used. */
    private makeRoom(now: number) {
        if (this.buckets.size < this.maxClients) return;
        for (const [client, bucket] of this.buckets)
            if (bucket.tokens + (now - bucket.updatedAt) * this.perMs >= this.burst) this.buckets.delete(client);
        while (this.buckets.size >= this.maxClients)
            this.buckets.delete(this.buckets.keys().next().value!);
    }
}
