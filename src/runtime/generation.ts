import {randomUUID} from "node:crypto";
import type {BackendModel, BackendSequence, OutputConstraint, RenderedPrompt} from "../backends/backend.js";
import {StopSequenceScanner} from "./stop-sequences.js";
import {readAhead} from "./read-ahead.js";
import type {DraftSource} from "../speculative/types.js";
import type {FinishReason, GenerationEvent, GenerationRequest, GenerationStream, Timings, TokenAlternative, TokenLogprob, Usage} from "./types.js";
import type {ContextFit} from "./context-fit.js";

export interface GenerationSetup {
    request: GenerationRequest;
    model: BackendModel;
    sequence: BackendSequence;
    prompt: RenderedPrompt;
    constraint?: OutputConstraint;
    /** Most tokens this generation may produce (request limit, and room left in the context unless it slides). */
    tokenLimit: number;
    /** Set under the `truncate` and `slide` policies: what was cut, and the sliding window. */
    overflow?: Pick<ContextFit, "truncatedPromptTokens" | "window">;
    receivedAt: number;
    acquiredAt: number;
    signal?: AbortSignal;
    /** Gives the sequence back; called exactly once. */
    /** Draft tokens to verify in batches, when this request speculates. */
    speculation?: DraftSource;
    /** Current pacing cap in tokens per second (read before every token; undefined = none). */
    tokensPerSecond?: () => number | undefined;
    /** `slid`: the sequence's window moved, so its KV past the sink tokens is not a clean prefix. */
    release(outcome: {slid: boolean; drafted: number; accepted: number}): void;
}

/**
 * One request running on one sequence: evaluates the prompt, turns tokens into text, cuts at
 * stop strings and limits, and reports usage and timings. Iterate it once; breaking out of
 * the iteration (or the signal aborting) stops decoding and frees the sequence.
 */
export class Generation implements GenerationStream {
    readonly id = randomUUID().replaceAll("-", "");
    readonly created = Math.floor(Date.now() / 1000);
    private started = false;
    private released = false;
    private droppedTokens = 0;
    private drafted = 0;
    private accepted = 0;
    /** Set by `cancel()` (shutdown past its grace period): ends like a client's abort. */
    private cancelledByServer = false;
    private readonly onAbortBeforeStart = () => {
        if (!this.started) this.release();
    };

    constructor(private readonly setup: GenerationSetup) {
        // A client that leaves before reading anything must not keep the sequence.
        if (setup.signal?.aborted)
            this.release();
        else
            setup.signal?.addEventListener("abort", this.onAbortBeforeStart, {once: true});
    }

    get model() {
        return this.setup.model.description.id;
    }

    get promptTokens() {
        return this.setup.prompt.tokens.length;
    }

    [Symbol.asyncIterator](): AsyncIterator<GenerationEvent> {
        if (this.started)
            throw new Error("A generation stream can be iterated only once");
        this.started = true;
        this.setup.signal?.removeEventListener("abort", this.onAbortBeforeStart);
        if (this.released)
            return (async function* (): AsyncGenerator<GenerationEvent> {})();
        return this.run();
    }

    private async *run(): AsyncGenerator<GenerationEvent> {
        const {request, prompt, overflow} = this.setup;
        const count = request.n ?? 1;
        const finishes: FinishReason[] = [];
        let generated = 0;
        let reused = 0;
        let firstTokenAt = 0;
        let evaluatedPrompt = 0;
        try {
            // Answers run one after another on the same sequence: the second one finds the
            // prompt in KV (all but its last token) and evaluates only what differs.
            for (let choice = 0; choice < count; choice++) {
                const result = yield* this.runChoice(count > 1 ? choice : undefined);
                finishes.push(result.finishReason);
                generated += result.generated;
                evaluatedPrompt += prompt.tokens.length - result.reused;
                if (choice === 0) {
                    reused = result.reused;
                    firstTokenAt = result.firstTokenAt;
                }
                if (result.finishReason === "cancelled") break;
            }
            const usage: Usage = {
                promptTokens: prompt.tokens.length,
                completionTokens: generated,
                totalTokens: prompt.tokens.length + generated,
                cachedPromptTokens: reused
            };
            if (overflow != null) {
                usage.truncatedPromptTokens = overflow.truncatedPromptTokens;
                usage.droppedContextTokens = this.droppedTokens;
            }
            const timings = this.timings(generated, reused, firstTokenAt);
            const done: GenerationEvent = {type: "done", finishReason: finishes.at(-1)!, usage, timings};
            if (count > 1) {
                done.choices = finishes;
                timings.evaluatedPromptTokens = evaluatedPrompt;
            }
            yield done;
        } finally {
            this.release();
        }
    }

    /** One answer: decodes until a stop, and yields its text (tagged with `choice` when there are several). */
    private async *runChoice(choice: number | undefined): AsyncGenerator<GenerationEvent, {finishReason: FinishReason; generated: number; reused: number; firstTokenAt: number}> {
        const {request, model, sequence, prompt, constraint, tokenLimit, overflow, signal} = this.setup;
        const scanner = new StopSequenceScanner(
            [...request.stop, ...prompt.stopStrings, ...(constraint?.stopStrings ?? [])],
            constraint?.trimTrailingWhitespace ?? false
        );
        const detokenizer = model.createDetokenizer();
        const sampling = choice == null || request.sampling.seed == null ? request.sampling : {...request.sampling, seed: request.sampling.seed + choice};
        const tokens = readAhead(sequence.generate(prompt.tokens, {
            sampling,
            constraint,
            slidingWindow: overflow?.window,
            speculation: request.logprobs == null ? this.setup.speculation : undefined,
            logprobs: request.logprobs,
            maxTokens: tokenLimit
        }));
        const logprobs = request.logprobs == null ? undefined : new TokenLogprobs(model);
        const tagged = (event: GenerationEvent & {type: "delta"}): GenerationEvent => {
            if (choice != null) event.choice = choice;
            if (logprobs != null) event.logprobs = logprobs.take();
            return event;
        };

        let generated = 0;
        let unreportedTokens = 0;
        let reused = 0;
        let firstTokenAt = 0;
        let finishReason: FinishReason = "stop";
        let stoppedByString = false;
        try {
            for await (const {token, reusedPromptTokens, droppedTokens, speculation, logprobs: tokenLogprobs} of tokens) {
                if (speculation != null) {
                    this.drafted += speculation.drafted;
                    this.accepted += speculation.accepted;
                }
                if (reusedPromptTokens != null) {
                    firstTokenAt = performance.now();
                    reused = reusedPromptTokens;
                }
                if (droppedTokens != null)
                    this.droppedTokens += droppedTokens;
                if (this.setup.tokensPerSecond?.() != null) await this.pace();
                // A token decoded after the client cancelled is never sent, so it is not counted either.
                if (signal?.aborted || this.cancelledByServer) {
                    finishReason = "cancelled";
                    break;
                }
                generated++;
                unreportedTokens++;
                if (tokenLogprobs != null) logprobs?.push(token, tokenLogprobs);
                const piece = detokenizer.push(token);
                if (piece.length > 0) {
                    const {text, stopped} = scanner.push(piece);
                    if (text.length > 0) {
                        yield tagged({type: "delta", text, tokens: unreportedTokens});
                        unreportedTokens = 0;
                    }
                    if (stopped) {
                        stoppedByString = true;
                        break;
                    }
                }
                if (generated >= tokenLimit) {
                    finishReason = "length";
                    break;
                }
            }
            if (signal?.aborted || this.cancelledByServer)
                finishReason = "cancelled";

            if (!stoppedByString && finishReason !== "cancelled") {
                const {text, stopped} = scanner.push(detokenizer.flush());
                const rest = stopped ? text : text + scanner.finish();
                if (stopped) finishReason = "stop";
                if (rest.length > 0 || unreportedTokens > 0)
                    yield tagged({type: "delta", text: rest, tokens: unreportedTokens});
            }
            return {finishReason, generated, reused, firstTokenAt};
        } finally {
            await tokens.return();
        }
    }

    /**
     * Stops decoding after the current token; the stream still ends with a `done` event
     * (finish reason "cancelled"), so transports can close it properly. Not yet iterated: the
     * sequence is given back at once and the stream yields nothing.
     */
    cancel() {
        this.cancelledByServer = true;
        if (!this.started) this.release();
    }

    private lastTokenAt = 0;

    /**
     * Under a tokens/s cap, holds each token until its interval since the previous one is over.
     * The decoder, at most one token ahead (read-ahead), idles meanwhile: that is what saves
     * power. Wakes early on abort.
     */
    private async pace() {
        const rate = this.setup.tokensPerSecond?.();
        const now = performance.now();
        if (rate != null && rate > 0 && this.lastTokenAt > 0) {
            const wait = this.lastTokenAt + 1000 / rate - now;
            if (wait > 1) await sleep(wait, this.setup.signal);
        }
        this.lastTokenAt = performance.now();
    }

    private timings(generated: number, reused: number, firstTokenAt: number): Timings {
        const {receivedAt, acquiredAt, prompt} = this.setup;
        const end = performance.now();
        const first = firstTokenAt || end;
        const promptMs = first - acquiredAt;
        const generationMs = end - first;
        const evaluatedPrompt = prompt.tokens.length - reused;
        return {
            queuedMs: round(acquiredAt - receivedAt),
            timeToFirstTokenMs: round(first - receivedAt),
            promptMs: round(promptMs),
            generationMs: round(generationMs),
            promptTokensPerSecond: promptMs > 0 ? round(evaluatedPrompt / (promptMs / 1000)) : 0,
            // The first token comes out of the prompt pass; the rest were decoded one by one.
            generationTokensPerSecond: generationMs > 0 && generated > 1 ? round((generated - 1) / (generationMs / 1000)) : 0,
            ...(this.setup.speculation == null ? {} : {draftTokens: this.drafted, draftTokensAccepted: this.accepted})
        };
    }

    private release() {
        if (this.released) return;
        this.released = true;
        this.setup.release({slid: this.droppedTokens > 0, drafted: this.drafted, accepted: this.accepted});
    }
}

function round(value: number) {
    return Math.round(value * 100) / 100;
}

function sleep(ms: number, signal?: AbortSignal) {
    return new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const done = () => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", done);
            resolve();
        };
        const timer = setTimeout(done, ms);
        signal?.addEventListener("abort", done, {once: true});
    });
}

/**
 * Log-probabilities of the tokens decoded since the last delta, with each token's text and
 * bytes. Token texts are looked up once per token id.
 */
class TokenLogprobs {
    private pending: TokenLogprob[] = [];
    private readonly pieces = new Map<number, Omit<TokenAlternative, "logprob">>();

    constructor(private readonly model: BackendModel) {}

    push(token: number, {logprob, top}: {logprob: number; top: {token: number; logprob: number}[]}) {
        this.pending.push({...this.piece(token), logprob, top: top.map((entry) => ({...this.piece(entry.token), logprob: entry.logprob}))});
    }

    take(): TokenLogprob[] {
        const taken = this.pending;
        this.pending = [];
        return taken;
    }

    private piece(token: number) {
        let piece = this.pieces.get(token);
        if (piece == null) {
            piece = {token: this.model.tokenText?.(token) ?? "", bytes: [...(this.model.tokenBytes?.(token) ?? [])]};
            this.pieces.set(token, piece);
        }
        return piece;
    }
}
