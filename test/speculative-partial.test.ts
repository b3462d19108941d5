import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {Runtime} from "../src/runtime/runtime.js";
import type {GenerationRequest, TokenLogprob} from "../src/runtime/types.js";
import type {AcceptanceOptions} from "../src/speculative/acceptance.js";
import {writeDeepTargetFixtures} from "../scripts/fixtures/deep-target.js";
import {divergenceGap} from "../scripts/bench/divergence.js";
import {isStories260K, testModelPath} from "./helpers/model.js";

/**
 * Greedy speculation with a draft the target agrees with only part of the time: every
 * verification batch ends in a rejection somewhere, drafts are erased from the KV cache, and the
 * adaptive tracker pauses and resumes. The output must be plain greedy decoding's — except where
 * plain decoding's two likeliest tokens are a near-tie: llama.cpp's logits depend on how tokens
 * were batched (a batch of k+1 verified tokens sums in another order than k+1 single steps) at
 * about 1e-3 nats on this 20-layer fixture, so a tie that close may go either way. That is the same
 * for any llama.cpp-based speculation (and for prefix reuse); a real mismatch shows up as a
 * divergence at a position the target was sure about.
 */
const NEAR_TIE_NATS = 0.01;

let dir: string;
let noisyPath: string;

beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "speculative-partial-"));
    noisyPath = (await writeDeepTargetFixtures({source: testModelPath, outDir: dir})).noisy;
});

afterAll(async () => {
    await rm(dir, {recursive: true, force: true});
});

async function generate(runtime: Runtime, prompt: string, extra: Partial<GenerationRequest>) {
    const stream = await runtime.generate({input: {kind: "completion", prompt}, sampling: {temperature: 0}, maxTokens: 160, stop: [], ...extra});
    let text = "";
    const logprobs: TokenLogprob[] = [];
    for await (const event of stream) {
        if (event.type === "delta") {
            text += event.text;
            logprobs.push(...event.logprobs ?? []);
        } else return {text, logprobs, timings: event.timings};
    }
    throw new Error("the stream ended without a done event");
}

describe.skipIf(!isStories260K)("speculation with a partly agreeing draft model", () => {
    // On this tiny target drafting does not pay, so the adaptive tracker mostly pauses; pinned, it drafts at every step.
    it.each([
        ["drafting at every step, k adapting", {minSpeedup: 0, probeTokens: 0}, 100],
        ["drafting at every step, k = 6", {minSpeedup: 0, probeTokens: 0, minK: 6, maxK: 6, initialK: 6}, 100],
        ["the default adaptive tracker (pauses and resumes)", {}, 0]
    ] satisfies [string, AcceptanceOptions, number][])("decodes plain greedy's tokens, differing only after a near-tie: %s", async (_, tuning, minDrafted) => {
        const runtime = new Runtime(await LlamaCppBackend.create({gpu: false, logger: () => {}}));
        try {
            await runtime.load({path: noisyPath, id: "noisy", parallel: 1, contextSize: 512, threads: 1, draftPath: testModelPath, speculationTuning: tuning});
            await expectPlainUpToNearTies(runtime, minDrafted);
        } finally {
            await runtime.dispose();
        }
    });
});

async function expectPlainUpToNearTies(runtime: Runtime, minDrafted: number) {
    let drafted = 0;
    let accepted = 0;
    let identical = 0;
    for (const prompt of ["Once upon a time", "Tom had a red ball.", "The sun was hot and", "Lily and her mom went to"]) {
        const plain = await generate(runtime, prompt, {speculative: false, logprobs: {top: 2}});
        const speculative = await generate(runtime, prompt, {speculative: "draft"});
        drafted += speculative.timings.draftTokens ?? 0;
        accepted += speculative.timings.draftTokensAccepted ?? 0;

        const divergence = divergenceGap(plain, speculative.text);
        if (divergence == null) identical++;
        else expect(divergence.gapNats, `${JSON.stringify(prompt)} differs at ${JSON.stringify(plain.text.slice(0, divergence.at))}|`).toBeLessThan(NEAR_TIE_NATS);
    }
    // Partial agreement: verification batches with rejections were exercised.
    expect(drafted).toBeGreaterThanOrEqual(minDrafted);
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(drafted * 0.95);
    expect(identical).toBeGreaterThanOrEqual(2);
}
