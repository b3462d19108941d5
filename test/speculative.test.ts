import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {startTestServer, type TestServer} from "./helpers/server.js";

let server: TestServer;
beforeAll(async () => {
    server = await startTestServer({parallel: 2, contextSize: 1024});
});
afterAll(() => server?.stop());

// A story the model retells: its continuation repeats phrases of the prompt, so n-grams match.
const prompt = "Once upon a time, there was a little girl named Lily. She loved to play with her toys and her friends. " +
    "One day, Lily's mommy told her that they were going to the park. Once upon a time, there was a little girl named Lily.";

async function complete(body: Record<string, unknown>) {
    const response = await fetch(`${server.url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({model: server.modelId, prompt, max_tokens: 200, temperature: 0, ...body})
    });
    return await response.json() as {choices: {text: string; finish_reason: string}[]; usage: {completion_tokens: number}; timings: Record<string, number>};
}

describe("speculative decoding with prompt lookup", () => {
    it("gives token-identical greedy output, and reports drafted and accepted tokens", async () => {
        const plain = await complete({speculative: false});
        const speculative = await complete({speculative: "prompt-lookup"});
        expect(speculative.choices[0]!.text).toBe(plain.choices[0]!.text);
        expect(speculative.usage.completion_tokens).toBe(plain.usage.completion_tokens);
        expect(speculative.choices[0]!.finish_reason).toBe(plain.choices[0]!.finish_reason);
        expect(plain.timings).not.toHaveProperty("draft_n");
        expect(speculative.timings.draft_n).toBeGreaterThan(0);
        expect(speculative.timings.draft_n_accepted).toBeGreaterThan(0);
        expect(speculative.timings.draft_n_accepted).toBeLessThanOrEqual(speculative.timings.draft_n!);
        expect(server.runtime.health().speculation.accepted).toBe(speculative.timings.draft_n_accepted);
    });

    it("stays identical across several prompts and with stop strings", async () => {
        for (const extra of [{max_tokens: 64}, {stop: ["park"]}, {prompt: "The cat sat on the mat. The cat sat on the"}]) {
            const plain = await complete({...extra, speculative: false});
            const speculative = await complete({...extra, speculative: true});
            expect(speculative.choices[0]!.text).toBe(plain.choices[0]!.text);
        }
    });

    it("samples at temperature > 0 and completes", async () => {
        const sampled = await complete({temperature: 0.8, seed: 3, speculative: "prompt-lookup"});
        expect(sampled.usage.completion_tokens).toBe(200);
        expect(sampled.timings.draft_n).toBeGreaterThan(0);
    });

    it("is switched off by the power limits", async () => {
        const before = server.runtime.health().speculation.drafted;
        server.runtime.setLimits({speculative: false});
        const result = await complete({speculative: "prompt-lookup"});
        server.runtime.setLimits({});
        expect(result.timings).not.toHaveProperty("draft_n");
        expect(server.runtime.health().speculation.drafted).toBe(before);
    });
});

describe("speculative decoding with a draft model", () => {
    it("loads a draft beside the model and keeps greedy output token-identical", async () => {
        const {testModelPath} = await import("./helpers/model.js");
        // The test model drafting for itself: every greedy draft must be accepted.
        const withDraft = await startTestServer({parallel: 2, contextSize: 1024, draftPath: testModelPath});
        try {
            expect(withDraft.runtime.health().model!.draftModel).toBe(testModelPath);
            const ask = async (speculative: unknown) => await (await fetch(`${withDraft.url}/v1/completions`, {
                method: "POST",
                body: JSON.stringify({model: withDraft.modelId, prompt: "Tom had a red ball.", max_tokens: 120, temperature: 0, speculative})
            })).json() as {choices: {text: string}[]; timings: Record<string, number>};
            const plain = await ask(false);
            const drafted = await ask(undefined); // the server's default with a draft model: "draft"
            expect(drafted.choices[0]!.text).toBe(plain.choices[0]!.text);
            expect(drafted.timings.draft_n).toBeGreaterThan(0);
            expect(drafted.timings.draft_n_accepted).toBe(drafted.timings.draft_n);
        } finally {
            await withDraft.stop();
        }
    });

    it("refuses a draft model whose tokenizer differs, naming why", async () => {
        const {assertCompatibleDraft} = await import("../src/backends/llama-cpp/draft-model.js");
        const vocabulary = (size: number, padFrom = size) => Array.from({length: size}, (_, index) => index < padFrom ? `t${index}` : `[PAD${index}]`);
        const model = (size: number, tokenize: (text: string) => number[], tokens = vocabulary(size)) => ({
            fileInfo: {metadata: {tokenizer: {ggml: {tokens}}}},
            tokens: {bos: 1, eos: 2},
            tokenize
        }) as never;
        const same = (text: string) => [...text].map((char) => char.charCodeAt(0));
        expect(() => assertCompatibleDraft(model(512, same), model(512, same), "d.gguf")).not.toThrow();
        expect(() => assertCompatibleDraft(model(512, same), model(32000, same), "d.gguf")).toThrow(/vocabulary sizes differ \(512 vs 32000\)/);
        // A target padded with up to 128 extra entries (Qwen2.5 7B vs 0.5B) is fine; more, or a larger draft, is not.
        expect(() => assertCompatibleDraft(model(640, same, vocabulary(640, 512)), model(512, same), "d.gguf")).not.toThrow();
        expect(() => assertCompatibleDraft(model(641, same, vocabulary(641, 512)), model(512, same), "d.gguf")).toThrow(/vocabulary sizes differ \(641 vs 512\)/);
        expect(() => assertCompatibleDraft(model(512, same), model(640, same), "d.gguf")).toThrow(/vocabulary sizes differ \(512 vs 640\)/);
        const renamed = vocabulary(640, 512);
        renamed[7] = "other";
        expect(() => assertCompatibleDraft(model(640, same, renamed), model(512, same), "d.gguf")).toThrow(/vocabularies differ from token 7 on/);
        // Text holding a padding token the draft does not have gets no drafts (the target decodes on alone).
        const {DraftModelSource} = await import("../src/backends/llama-cpp/draft-model.js");
        expect(await new DraftModelSource({} as never, 512).draft([1, 2, 600], 4)).toEqual([]);
        expect(() => assertCompatibleDraft(model(512, same), model(512, (text) => same(text).reverse()), "d.gguf")).toThrow(/tokenize the same text differently/);
    });
});

describe("speculation at the end of the context", () => {
    it("never drafts past the context and ends with length, identical to plain decoding", async () => {
        const small = await startTestServer({parallel: 1, contextSize: 256});
        try {
            const ask = async (speculative: boolean) => await (await fetch(`${small.url}/v1/completions`, {
                method: "POST",
                body: JSON.stringify({model: small.modelId, prompt, temperature: 0, speculative, max_tokens: 256 - (small.runtime.countTokens(prompt) + 1)})
            })).json() as {choices: {text: string; finish_reason: string}[]; usage: {prompt_tokens: number; completion_tokens: number}};
            // max_tokens fills the 256-token context exactly (prompt + BOS + answer).
            const plain = await ask(false);
            const speculative = await ask(true);
            expect(speculative.choices[0]).toEqual(plain.choices[0]);
            expect(speculative.choices[0]!.finish_reason).toBe("length");
            expect(speculative.usage.prompt_tokens + speculative.usage.completion_tokens).toBe(256);
        } finally {
            await small.stop();
        }
    });
});
