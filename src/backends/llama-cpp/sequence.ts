import {acquireLock} from "lifecycle-utils";
import {LlamaGrammarEvaluationState, type LlamaContextSequence, type LlamaModel, type SequenceEvaluateOptions, type Token} from "node-llama-cpp";
import type {BackendSequence, GeneratedToken, SequenceGenerateOptions} from "../backend.js";
import type {SamplingOptions} from "../../runtime/types.js";
import {LlamaOutputConstraint} from "./constraint.js";
import {NO_CONTEXT_SHIFT, SlidingWindowShift} from "./context-shift.js";
import {speculativeDecode} from "./speculative-decode.js";
import {AcceptanceTracker, type AcceptanceOptions} from "../../speculative/acceptance.js";
import type {DraftSource} from "../../speculative/types.js";
import {effectiveRepeatPenalty, effectiveTemperature} from "./sampling-guards.js";
import {sequenceIdOf, type BatchGatherer} from "./batch-gather.js";
import {NO_CONTENTION, type NativeDecodeLoop} from "./native-loop/decode-loop.js";

const DEFAULT_PENALTY_LAST_N = 64;
/** Penalties look at most this far back (`repeat_last_n` ≤ 4096); older history is trimmed. */
const HISTORY_TRIM = 8192;

/** One llama.cpp sequence: its KV cells and the decode loop over them. */
export class LlamaCppSequence implements BackendSequence {
    readonly draftSource?: DraftSource;
    private readonly speculationTuning: AcceptanceOptions;
    private readonly gatherer?: BatchGatherer;
    private readonly nativeLoop?: NativeDecodeLoop;

    constructor(
        readonly index: number,
        private readonly sequence: LlamaContextSequence,
        private readonly model: LlamaModel,
        options: {draftSource?: DraftSource; speculationTuning?: AcceptanceOptions; gatherer?: BatchGatherer; nativeLoop?: NativeDecodeLoop} = {}
    ) {
        this.draftSource = options.draftSource;
        this.speculationTuning = options.speculationTuning ?? {};
        this.gatherer = options.gatherer;
        this.nativeLoop = options.nativeLoop;
    }

    get cachedTokens(): readonly number[] {
        return this.sequence.contextTokens;
    }

    async *generate(prompt: readonly number[], options: SequenceGenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
        // Counted while it runs: the other streams' batches wait for its next token (batch-gather.ts).
        const stopped = this.gatherer?.begin();
        try {
            yield* this.decode(prompt, options);
        } finally {
            stopped?.();
        }
    }

    private async *decode(prompt: readonly number[], {sampling, constraint, slidingWindow, speculation, logprobs, maxTokens}: SequenceGenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
        const reused = await this.reuseCachedPrefix(prompt);
        const history = [...prompt];
        if (logprobs != null) {
            yield* this.generateWithLogprobs(prompt.slice(reused), reused, history, sampling, logprobs.top, constraint, slidingWindow);
            return;
        }
        if (speculation != null && canSpeculate(sampling, constraint, slidingWindow)) {
            const plain = {...this.evaluateOptions(sampling, history, constraint), contextShift: NO_CONTEXT_SHIFT};
            let first = true;
            // Prompt lookup drafts for free: a short first probe of plain decoding, so copying starts early.
            const tracker = new AcceptanceTracker({...speculation.kind === "prompt-lookup" ? {probeTokens: 4} : {}, ...this.speculationTuning});
            const steps = speculativeDecode(this.sequence, this.model, prompt.slice(reused), history, sampling, plain, speculation, tracker, (work) => this.exclusive(work));
            for await (const generated of steps) {
                if (first) {
                    first = false;
                    generated.reusedPromptTokens = reused;
                }
                yield generated;
            }
            return;
        }
        const options = this.evaluateOptions(sampling, history, constraint);
        const shift = slidingWindow == null ? undefined : new SlidingWindowShift(slidingWindow);
        options.contextShift = shift?.options ?? NO_CONTEXT_SHIFT;
        // Penalties look at the history and grammars advance per token in JavaScript: node-llama-cpp's
        // loop only. So do seeded draws: a hand-over between the loops would restart the random
        // stream, and the same seed must give the same answer whatever else is running.
        const seeded = sampling.seed != null && (options.temperature ?? 0) > 0;
        const native = options.repeatPenalty == null && options.grammarEvaluationState == null && !seeded ? this.nativeLoop : undefined;
        const contention = this.gatherer ?? NO_CONTENTION;
        const limit = maxTokens ?? Number.POSITIVE_INFINITY;

        let first = true;
        let produced = 0;
        const generated = (token: number): GeneratedToken => {
            produced++;
            const dropped = shift?.takeDropped() ?? 0;
            const result: GeneratedToken = dropped > 0 ? {token, droppedTokens: dropped} : {token};
            if (first) {
                first = false;
                result.reusedPromptTokens = reused;
            }
            return result;
        };
        let input = prompt.slice(reused) as Token[];
        // Alone on the context the native loop decodes; node-llama-cpp's batched loop whenever others
        // stream too, and back to native once they are done.
        // A prompt (its part not in the cells yet) that fits one batch goes to the native loop whole,
        // decoded in one batch with its first token sampled in the same pool job: node-llama-cpp's
        // evaluate takes ~1.5 ms more to a first token (a decode job and a sampling job, each a round
        // trip to the pool thread, and its batch dispatch). Longer prompts go through evaluate (their
        // batches are shared with other streams), and the loop takes over from the second token.
        while (true) {
            if (input.length <= (native?.maxInput ?? 0) && native?.canRun(this.sequence, contention) === true) {
                const steps = native.generate(this.sequence, input, {
                    sampling: nativeSampling(options, sampling.seed), maxTokens: limit - produced, contention,
                    truncate: (length) => this.truncate(length)
                });
                let end;
                try {
                    let step = await steps.next();
                    while (step.done !== true) {
                        yield generated(step.value);
                        step = await steps.next();
                    }
                    end = step.value;
                } finally {
                    await steps.return(undefined as never);
                }
                if (end.reason !== "handover") return;
                input = end.pending as Token[];
            }
            let handBack = false;
            for await (const token of this.sequence.evaluate(input, options)) {
                if (options.repeatPenalty) {
                    history.push(token);
                    // With a sliding window a generation can go on for ever.
                    if (history.length >= 2 * HISTORY_TRIM) history.splice(0, HISTORY_TRIM);
                }
                yield generated(token);
                if (produced < limit && native?.canRun(this.sequence, contention) === true) {
                    // The token is sampled, not decoded: the native loop decodes it next.
                    input = [token];
                    handBack = true;
                    break;
                }
            }
            if (!handBack) return;
        }
    }

    /**
     * The decode loop with probabilities. llama.cpp reports the distribution after the whole
     * sampler chain, which at a temperature above 0 has collapsed to the one sampled token; so
     * this asks node-llama-cpp for the greedy step (the full distribution after penalties and
     * grammar) and samples from it here with the request's temperature, top-k, top-p, min-p and
     * seed, handing the chosen token back as the next input. Slower than the plain loop (a
     * vocabulary-sized map per token), so only requests asking for logprobs take it. Under a
     * grammar the native sampler has already advanced the grammar with its own pick, so the
     * runtime allows only greedy sampling with grammars here.
     */
    private async *generateWithLogprobs(
        input: readonly number[], reused: number, history: number[], sampling: SamplingOptions, top: number,
        constraint: SequenceGenerateOptions["constraint"], slidingWindow: SequenceGenerateOptions["slidingWindow"]
    ): AsyncGenerator<GeneratedToken, void, void> {
        // Greedy and untruncated: the whole distribution comes back; truncation and temperature apply here.
        const options = {...this.evaluateOptions(sampling, history, constraint), temperature: 0, topK: undefined, topP: undefined, minP: undefined, seed: undefined, yieldEogToken: true};
        const shift = slidingWindow == null ? undefined : new SlidingWindowShift(slidingWindow);
        options.contextShift = shift?.options ?? NO_CONTEXT_SHIFT;
        const sample = sampling.temperature > 0 ? createSampler(sampling) : undefined;
        const steps = this.sequence.evaluateWithMetadata(input as Token[], {probabilities: true}, options);
        let first = true;
        try {
            let step = await steps.next();
            while (step.done !== true) {
                const {token: greedy, probabilities} = step.value;
                const token = sample?.(probabilities) ?? greedy;
                if (this.model.isEogToken(token as Token)) return;
                history.push(token);
                if (history.length >= 2 * HISTORY_TRIM) history.splice(0, HISTORY_TRIM);
                const alternatives: {token: number; logprob: number}[] = [];
                for (const [candidate, probability] of probabilities) {
                    if (alternatives.length >= top) break;
                    alternatives.push({token: candidate, logprob: toLogprob(probability)});
                }
                const generated: GeneratedToken = {token, logprobs: {logprob: toLogprob(probabilities.get(token as Token) ?? 0), top: alternatives}};
                const dropped = shift?.takeDropped() ?? 0;
                if (dropped > 0) generated.droppedTokens = dropped;
                if (first) {
                    first = false;
                    generated.reusedPromptTokens = reused;
                }
                yield generated;
                step = await steps.next(token as Token);
            }
        } finally {
            await steps.return();
        }
    }

    async truncate(length: number) {
        if (this.sequence.nextTokenIndex > length)
            await this.exclusive(() => this.sequence.eraseContextTokenRanges([{start: length, end: this.sequence.nextTokenIndex}]));
    }

    async saveState(file: string) {
        await this.exclusive(() => this.sequence.saveStateToFile(file));
    }

    async loadState(file: string) {
        await this.exclusive(async () => {
            try {
                await this.sequence.loadStateFromFile(file, {acceptRisk: true});
            } catch (error) {
                await this.dropAllCells();
                throw error;
            }
        });
    }

    /**
     * node-llama-cpp forgets a sequence's tokens before it loads a state; when the load fails,
     * llama.cpp still holds the old cells, and the next decode (at position 0) fails — for every
     * sequence in its batch. This drops them, under node-llama-cpp's own context lock.
     */
    private async dropAllCells() {
        const context = this.sequence.context as unknown as {_ctx: {disposeSequence(id: number): boolean}};
        const lock = await acquireLock([this.sequence.context, "context"]);
        try {
            context._ctx.disposeSequence(sequenceIdOf(this.sequence));
        } finally {
            lock.dispose();
        }
    }

    /** Work that takes the context lock, let in between batches of the other streams. */
    private exclusive<T>(work: () => Promise<T>): Promise<T> {
        return this.gatherer == null ? work() : this.gatherer.exclusive(sequenceIdOf(this.sequence), work);
    }

    /**
     * Keeps the KV of the longest common prefix of what the sequence holds and `prompt`, and
     * erases the rest. At least one prompt token is always evaluated so there are logits to sample.
     */
    private async reuseCachedPrefix(prompt: readonly number[]) {
        const cached = this.sequence.contextTokens;
        const limit = Math.min(cached.length, prompt.length - 1);
        let common = 0;
        while (common < limit && cached[common] === prompt[common])
            common++;

        if (common === 0) {
            if (this.sequence.nextTokenIndex > 0) await this.exclusive(() => this.sequence.clearHistory());
        } else if (this.sequence.nextTokenIndex > common)
            await this.exclusive(() => this.sequence.eraseContextTokenRanges([{start: common, end: this.sequence.nextTokenIndex}]));
        return common;
    }

    private evaluateOptions(sampling: SamplingOptions, history: number[], constraint?: SequenceGenerateOptions["constraint"]): SequenceEvaluateOptions {
        const options: SequenceEvaluateOptions = {
            temperature: effectiveTemperature(sampling.temperature),
            topK: sampling.topK,
            topP: sampling.topP,
            minP: sampling.minP,
            seed: sampling.seed
        };
        const {presencePenalty = 0, frequencyPenalty = 0, repeatPenalty = 1} = sampling;
        if (presencePenalty !== 0 || frequencyPenalty !== 0 || repeatPenalty !== 1) {
            const lastN = sampling.penaltyLastN ?? DEFAULT_PENALTY_LAST_N;
            options.repeatPenalty = {
                punishTokens: () => history.slice(-lastN) as Token[],
                maxPunishTokens: lastN,
                penalty: effectiveRepeatPenalty(repeatPenalty),
                presencePenalty,
                frequencyPenalty
            };
        }
        if (constraint instanceof LlamaOutputConstraint)
            options.grammarEvaluationState = new LlamaGrammarEvaluationState({model: this.model, grammar: constraint.grammar});
        return options;
    }
}

/** The native loop's sampler: node-llama-cpp's chain with the options its own loop gets. */
function nativeSampling(options: SequenceEvaluateOptions, seed: number | undefined) {
    return {
        temperature: options.temperature, topK: options.topK, topP: options.topP, minP: options.minP,
        // As node-llama-cpp reads it (a uint32); it seeds an unseeded request from the clock, a random seed is no less random.
        seed: seed == null ? Math.floor(Math.random() * 2 ** 32) : Math.max(0, Math.floor(seed)) % 2 ** 32
    };
}

/** node-llama-cpp's sampling defaults, so a request samples alike with or without logprobs. */
const DEFAULT_TOP_K = 40;
const DEFAULT_TOP_P = 0.95;

/**
 * Samples from a probability map sorted from likeliest down, in llama.cpp's order: top-k,
 * top-p, min-p, then temperature. Seeded requests draw from their own random stream.
 */
export function createSampler(sampling: SamplingOptions): (probabilities: ReadonlyMap<number, number>) => number {
    const random = sampling.seed == null ? Math.random : mulberry32(sampling.seed);
    // As in llama.cpp, top-k 0 keeps every token.
    const topK = sampling.topK == null ? DEFAULT_TOP_K : sampling.topK <= 0 ? Number.POSITIVE_INFINITY : sampling.topK;
    const topP = sampling.topP ?? DEFAULT_TOP_P;
    const minP = sampling.minP ?? 0;
    return (probabilities) => {
        const kept: [number, number][] = [];
        let mass = 0;
        let highest = 0;
        for (const [token, probability] of probabilities) {
            if (kept.length >= topK || probability <= 0) break;
            if (kept.length === 0) highest = probability;
            else if (mass >= topP || probability < minP * highest) break;
            kept.push([token, probability]);
            mass += probability;
        }
        const weights = kept.map(([, probability]) => Math.pow(probability / highest, 1 / sampling.temperature));
        let draw = random() * weights.reduce((sum, weight) => sum + weight, 0);
        for (let index = 0; index < kept.length; index++) {
            draw -= weights[index]!;
            if (draw <= 0) return kept[index]![0];
        }
        return kept.at(-1)![0];
    };
}

/** OpenAI writes -9999 for a token with no probability at all (JSON has no -Infinity). */
function toLogprob(probability: number) {
    return probability > 0 ? Math.max(Math.log(probability), -9999) : -9999;
}

function mulberry32(seed: number) {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6D2B79F5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

/**
 * Speculation verifies drafts with the target's plain sampler; penalties (which depend on the
 * tokens before each position), grammars (whose state advances token by token) and a sliding
 * window (which shifts positions mid-batch) are left to the plain decode loop.
 */
function canSpeculate(sampling: SamplingOptions, constraint: SequenceGenerateOptions["constraint"], slidingWindow: SequenceGenerateOptions["slidingWindow"]) {
    const penalties = (sampling.presencePenalty ?? 0) !== 0 || (sampling.frequencyPenalty ?? 0) !== 0 || (sampling.repeatPenalty ?? 1) !== 1;
    return !penalties && constraint == null && slidingWindow == null;
}
