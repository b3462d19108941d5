/** Where draft tokens come from: prompt lookup, a draft model, or anything else cheap. */
export interface DraftSource {
    readonly kind: "prompt-lookup" | "draft-model";
    /** Up to `k` tokens likely to follow `history` (fewer or none is fine). */
    draft(history: readonly number[], k: number): Promise<number[]>;
}

/** What one verification step did, for the response's timings and the metrics. */
export interface SpeculationStep {
    drafted: number;
    accepted: number;
}
