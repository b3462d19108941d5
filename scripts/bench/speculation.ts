/**
 * Speculative decoding: decode tokens/s with and without it, in one run, on targets derived from
 * stories260K (scripts/fixtures/deep-target.ts): an agreeing draft (identical logits), a
 * disagreeing one (noisy target), and prompt lookup on an echo task.
 */
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {writeDeepTargetFixtures} from "../fixtures/deep-target.js";
import {LlamaCppBackend} from "../../src/backends/llama-cpp/backend.js";
import {Runtime} from "../../src/runtime/runtime.js";
import type {GenerationRequest, TokenLogprob} from "../../src/runtime/types.js";
import {divergenceGap} from "./divergence.js";
import {median} from "./report.js";

export interface SpeculationRow {
    scenario: string;
    plainTokensPerSecond: number;
    speculativeTokensPerSecond: number;
    speedup: number;
    acceptance: number;
    /** Every speculative answer equals the plain one. */
    identical: boolean;
    /** Otherwise: plain decoding's top-2 gap (nats) where the first differing answer departs; ~1e-3 is a near-tie that batching may flip. */
    divergenceGapNats?: number;
    target: string;
    /** Echo task: the share of the answer copied from the prompt. */
    copied?: number;
}

interface Scenario {scenario: string; target: "deep" | "noisy"; speculative: "draft" | "prompt-lookup"; prompt: (passage: string) => string; goal: string; maxTokens?: number}

/** The echo answer's length: past ~300 tokens of context stories260K stops repeating anything. */
const ECHO_TOKENS = 128;

const echoPrompt = (passage: string) => `Once upon a time${passage}\n\nOnce upon a time${passage.slice(0, 60)}`;

const SCENARIOS: Scenario[] = [
    {scenario: "draft model that agrees (target = stories260K + zeroed layers)", target: "deep", speculative: "draft", prompt: () => "Once upon a time", goal: "≥ 1.8×"},
    {scenario: "draft model that disagrees (~30% of tokens, noisy target)", target: "noisy", speculative: "draft", prompt: () => "Once upon a time", goal: "≥ 0.95×"},
    {scenario: "prompt lookup, echo task (the prompt repeats a passage)", target: "deep", speculative: "prompt-lookup", prompt: echoPrompt, goal: "≥ 1.3×", maxTokens: ECHO_TOKENS},
    {scenario: "prompt lookup, free story (nothing to copy)", target: "deep", speculative: "prompt-lookup", prompt: () => "Once upon a time", goal: "≥ 0.95×"}
];

export async function runSpeculationBench(options: {model: string; runs: number; tokens: number; ffnLength: number}): Promise<SpeculationRow[]> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-bench-spec-"));
    try {
        const fixtures = await writeDeepTargetFixtures({source: options.model, outDir: dir, ffnLength: options.ffnLength});
        const rows: SpeculationRow[] = [];
        for (const target of ["deep", "noisy"] as const) {
            const runtime = new Runtime(await LlamaCppBackend.create({gpu: false, logger: () => {}}));
            await runtime.load({path: fixtures[target], id: target, parallel: 1, contextSize: 1024, threads: 1, draftPath: options.model});
            try {
                const generate = async (prompt: string, speculative: GenerationRequest["speculative"], maxTokens = options.tokens, logprobs?: {top: number}) => {
                    const stream = await runtime.generate({input: {kind: "completion", prompt}, sampling: {temperature: 0}, maxTokens, stop: [], speculative, logprobs});
                    let text = "";
                    const tokens: TokenLogprob[] = [];
                    for await (const event of stream) {
                        if (event.type === "delta") {
                            text += event.text;
                            tokens.push(...event.logprobs ?? []);
                        } else return {text, logprobs: tokens, timings: event.timings};
                    }
                    throw new Error("no result");
                };
                const story = (await generate("Once upon a time", false, 150)).text;
                const echo = !SCENARIOS.some((scenario) => scenario.target === target && scenario.prompt === echoPrompt)
                    ? {passage: story, copied: 0}
                    : await chooseEchoPassage(story, async (prompt) => (await generate(prompt, false, Math.min(options.tokens, ECHO_TOKENS))).text);
                for (const scenario of SCENARIOS.filter((entry) => entry.target === target)) {
                    const prompt = scenario.prompt(echo.passage);
                    const plain: number[] = [];
                    const fast: number[] = [];
                    let drafted = 0;
                    let accepted = 0;
                    let divergence: ReturnType<typeof divergenceGap>;
                    for (let run = 0; run < options.runs; run++) {
                        const maxTokens = Math.min(options.tokens, scenario.maxTokens ?? options.tokens);
                        const reference = await generate(prompt, false, maxTokens);
                        const speculative = await generate(prompt, scenario.speculative, maxTokens);
                        plain.push(reference.timings.generationTokensPerSecond);
                        fast.push(speculative.timings.generationTokensPerSecond);
                        drafted += speculative.timings.draftTokens ?? 0;
                        accepted += speculative.timings.draftTokensAccepted ?? 0;
                        if (divergence == null && speculative.text !== reference.text)
                            divergence = divergenceGap(await generate(prompt, false, maxTokens, {top: 2}), speculative.text);
                    }
                    rows.push({
                        scenario: `${scenario.scenario}; target ${scenario.goal}`,
                        target: path.basename(fixtures[target]),
                        plainTokensPerSecond: Math.round(median(plain) * 10) / 10,
                        speculativeTokensPerSecond: Math.round(median(fast) * 10) / 10,
                        speedup: Math.round((median(fast) / median(plain)) * 100) / 100,
                        acceptance: drafted === 0 ? 0 : Math.round((accepted / drafted) * 100) / 100,
                        ...(scenario.prompt === echoPrompt ? {copied: Math.round(echo.copied * 100) / 100} : {}),
                        identical: divergence == null,
                        ...(divergence == null ? {} : {divergenceGapNats: Number(divergence.gapNats.toPrecision(2))})
                    });
                }
            } finally {
                await runtime.dispose();
            }
        }
        return rows;
    } finally {
        await rm(dir, {recursive: true, force: true});
    }
}

/**
 * A 260K-parameter model cannot follow "repeat this": asked to continue a passage it has seen,
 * it drifts off after ~30 tokens. So the echo task's passage is one the model does repeat: the
 * passage is replaced by the model's own continuation of the echo prompt, round after round, and
 * the round whose answer copies the most of its prompt is kept (as a summary or a code edit
 * copies its input). `copied` is the share of the answer's characters inside runs of at least
 * 12 characters that also occur in the prompt.
 */
async function chooseEchoPassage(story: string, complete: (prompt: string) => Promise<string>, rounds = 8): Promise<{passage: string; copied: number}> {
    let passage = story;
    let best = {passage, copied: -1};
    for (let round = 0; round < rounds; round++) {
        const prompt = echoPrompt(passage);
        const answer = await complete(prompt);
        const copied = copiedShare(answer, prompt);
        if (copied > best.copied) best = {passage, copied};
        const next = passage.slice(0, 60) + answer;
        if (next === passage) break;
        passage = next;
    }
    return best;
}

export function copiedShare(answer: string, source: string, minRun = 12): number {
    let covered = 0;
    let position = 0;
    while (position < answer.length) {
        let length = 0;
        while (position + length < answer.length && source.includes(answer.slice(position, position + length + 1))) length++;
        if (length >= minRun) {
            covered += length;
            position += length;
        } else position++;
    }
    return answer.length === 0 ? 0 : covered / answer.length;
}

export function renderSpeculation(rows: SpeculationRow[], ffnLength: number) {
    return `
## Speculative decoding

Greedy decode tokens/s without and with speculation, medians, each pair measured back to back in
one process. Targets are generated on demand from stories260K (scripts/fixtures/deep-target.ts):
15 extra layers whose output projections are zero, FFN widened to ${ffnLength} so that verifying a
batch costs much less than its tokens one by one (as on a real, memory-bound model); the noisy
target adds small noise to those layers. The draft model is stories260K itself. A 260K model
cannot follow "repeat this", so the echo task's passage is one the model really repeats: its own
continuation of the echo prompt is fed back for a few rounds and the round whose answer copies the
most of its prompt is kept (copied: ${rows.find((row) => row.copied != null)?.copied != null ? `${Math.round(rows.find((row) => row.copied != null)!.copied! * 100)}%` : "n/a"} of the answer's characters in runs of ≥ 12 found in the prompt).
Its answers are ${ECHO_TOKENS} tokens: past ~300 tokens of context the model stops repeating anything. "identical": the
speculative text equals the plain one in every run; where not, the gap in nats between plain decoding's two likeliest tokens
where the answers part. llama.cpp's logits depend in the last bits on how tokens were batched (a verified batch of k+1
sums in another order than k+1 single steps), so at a near-tie (~1e-3 nats) either side is plain greedy output up to
rounding; test/speculative-partial.test.ts checks that every divergence is such a tie.

| scenario | plain tok/s | speculative tok/s | speed-up | accepted drafts | identical |
| --- | ---: | ---: | ---: | ---: | :---: |
${rows.map((row) => `| ${row.scenario} | ${row.plainTokensPerSecond} | ${row.speculativeTokensPerSecond} | ${row.speedup}× | ${Math.round(row.acceptance * 100)}% | ${identicalCell(row)} |`).join("\n")}
`;
}

function identicalCell(row: SpeculationRow) {
    if (row.identical) return "yes";
    return row.divergenceGapNats! < 0.01 ? `up to a near-tie (${row.divergenceGapNats} nats)` : `NO (plain was sure there: ${row.divergenceGapNats} nats)`;
}
