/**
 * Prompt-lookup drafting (n-gram matching): find the latest earlier occurrence of the text's
 * last n tokens and propose what followed it. Free to compute and right surprisingly often for
 * input-grounded work (summaries, code edits, quoting), where the answer copies the prompt.
 */
export interface PromptLookupOptions {
    /** Longest suffix tried first. Default 4. */
    maxNgram?: number;
    /** Shortest suffix still trusted. Default 3 (bigrams match too often by chance in prose). */
    minNgram?: number;
}

export function lookupDraft(history: readonly number[], k: number, {maxNgram = 4, minNgram = 3}: PromptLookupOptions = {}): number[] {
    const end = history.length;
    for (let n = Math.min(maxNgram, end - 1); n >= minNgram; n--) {
        // Scan backwards so the most recent match wins (closest context, likeliest continuation).
        for (let start = end - n - 1; start >= 0; start--) {
            let match = true;
            for (let offset = 0; offset < n; offset++)
                if (history[start + offset] !== history[end - n + offset]) {
                    match = false;
                    break;
                }
            if (!match) continue;
            const from = start + n;
            const draft = history.slice(from, Math.min(from + k, end));
            if (draft.length > 0) return [...draft];
        }
    }
    return [];
}
