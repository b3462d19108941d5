import {stat} from "node:fs/promises";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import OpenAI from "openai";
import {startTestServer, type TestServer} from "./helpers/server.js";
import {isStories260K, testModelPath} from "./helpers/model.js";

let server: TestServer;
let client: OpenAI;

beforeAll(async () => {
    server = await startTestServer({parallel: 2});
    client = new OpenAI({baseURL: `${server.url}/v1`, apiKey: "not-needed", maxRetries: 0});
});
afterAll(() => server?.stop());

const story = [{role: "user" as const, content: "Tell me a story about a cat."}];

async function post(path: string, body: unknown) {
    const response = await fetch(`${server.url}${path}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    return {status: response.status, body: await response.json() as Record<string, any>};
}

describe("logprobs", () => {
    it.skipIf(!isStories260K)("chat: each token with its logprob, bytes and top alternatives; greedy picks the likeliest; the text is unchanged", async () => {
        const plain = await client.chat.completions.create({model: server.modelId, messages: story, max_tokens: 12, temperature: 0});
        const completion = await client.chat.completions.create({model: server.modelId, messages: story, max_tokens: 12, temperature: 0, logprobs: true, top_logprobs: 3});
        const choice = completion.choices[0]!;
        expect(choice.message.content).toBe(plain.choices[0]!.message.content);
        const content = choice.logprobs!.content!;
        expect(content).toHaveLength(12);
        expect(content.map((entry) => entry.token).join("").trimStart()).toBe(choice.message.content!.trimStart());
        for (const entry of content) {
            expect(entry.logprob).toBeLessThanOrEqual(0);
            expect(entry.bytes).toEqual([...Buffer.from(entry.token)]);
            expect(entry.top_logprobs).toHaveLength(3);
            expect(entry.top_logprobs[0]!.token).toBe(entry.token);
            expect(entry.top_logprobs[0]!.logprob).toBeCloseTo(entry.logprob, 6);
            expect(entry.top_logprobs[1]!.logprob).toBeLessThanOrEqual(entry.top_logprobs[0]!.logprob);
            expect(entry.top_logprobs.reduce((sum, top) => sum + Math.exp(top.logprob), 0)).toBeLessThanOrEqual(1.0001);
        }
        expect(plain.choices[0]!.logprobs).toBeNull();
    });

    it("chat streaming: logprobs ride on the content chunks; sampled with a seed they repeat exactly", async () => {
        const request = {model: server.modelId, messages: story, max_tokens: 10, temperature: 1, seed: 42, logprobs: true, top_logprobs: 2} as const;
        const stream = await client.chat.completions.create({...request, stream: true});
        let text = "";
        const entries: OpenAI.Chat.Completions.ChatCompletionTokenLogprob[] = [];
        for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? "";
            entries.push(...(chunk.choices[0]?.logprobs?.content ?? []));
        }
        const whole = await client.chat.completions.create(request);
        expect(whole.choices[0]!.message.content).toBe(text);
        expect(whole.choices[0]!.logprobs!.content).toEqual(entries);
        expect(entries).toHaveLength(10);
        // Sampled, not greedy: the chosen token is among the candidates, not always the first.
        for (const entry of entries) expect(entry.logprob).toBeGreaterThan(-30);
    });

    it("completions: the legacy object with tokens, token_logprobs, top_logprobs and text_offset", async () => {
        const completion = await client.completions.create({model: server.modelId, prompt: "Once upon a time", max_tokens: 6, temperature: 0, logprobs: 2, echo: true});
        const choice = completion.choices[0]!;
        const logprobs = choice.logprobs!;
        expect(logprobs.tokens).toHaveLength(6);
        expect(logprobs.token_logprobs).toHaveLength(6);
        expect(logprobs.top_logprobs!.every((top) => Object.keys(top).length === 2)).toBe(true);
        expect(logprobs.text_offset![0]).toBe("Once upon a time".length);
        for (let index = 1; index < 6; index++)
            expect(logprobs.text_offset![index]).toBe(logprobs.text_offset![index - 1]! + logprobs.tokens![index - 1]!.length);

        const stream = await client.completions.create({model: server.modelId, prompt: "Once upon a time", max_tokens: 6, temperature: 0, logprobs: 2, stream: true});
        const streamed: string[] = [];
        for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.logprobs?.tokens ?? []));
        expect(streamed).toEqual(logprobs.tokens);
    });

    it("rejects top_logprobs over 20, top_logprobs without logprobs, and sampled logprobs under a grammar", async () => {
        expect(await post("/v1/chat/completions", {model: server.modelId, messages: story, logprobs: true, top_logprobs: 21}))
            .toMatchObject({status: 400, body: {error: {param: "top_logprobs"}}});
        expect(await post("/v1/chat/completions", {model: server.modelId, messages: story, top_logprobs: 2}))
            .toMatchObject({status: 400, body: {error: {param: "top_logprobs"}}});
        expect(await post("/v1/completions", {model: server.modelId, prompt: "x", logprobs: 21}))
            .toMatchObject({status: 400, body: {error: {param: "logprobs"}}});
        expect(await post("/v1/chat/completions", {model: server.modelId, messages: story, logprobs: true, temperature: 0.5, response_format: {type: "json_object"}}))
            .toMatchObject({status: 400, body: {error: {param: "logprobs"}}});
    });
});

describe("n > 1", () => {
    it("returns n answers with their own index; usage counts the tokens of all of them; the prompt is evaluated once", async () => {
        const fresh = [{role: "user" as const, content: "Tell me a story about a dog and a ball."}];
        const completion = await client.chat.completions.create({model: server.modelId, messages: fresh, max_tokens: 8, temperature: 1, seed: 7, n: 3});
        expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1, 2]);
        const texts = completion.choices.map((choice) => choice.message.content!);
        expect(texts.every((text) => text.length > 0)).toBe(true);
        expect(new Set(texts).size).toBeGreaterThan(1);
        expect(completion.choices.every((choice) => choice.finish_reason === "length")).toBe(true);
        expect(completion.usage!.completion_tokens).toBe(24);
        const prompt = completion.usage!.prompt_tokens;
        expect(completion.usage!.total_tokens).toBe(prompt + 24);
        // The prompt is counted once, and evaluated once: answers 2 and 3 find it in the sequence's
        // KV and evaluate only its last token again (for fresh logits).
        const timings = (completion as unknown as {timings: {prompt_n: number; cache_n: number}}).timings;
        expect(timings.prompt_n).toBe(prompt - timings.cache_n + 2);

        // Streamed with the same seed: the same three answers, told apart by index.
        const stream = await client.chat.completions.create({model: server.modelId, messages: fresh, max_tokens: 8, temperature: 1, seed: 7, n: 3, stream: true, stream_options: {include_usage: true}});
        const streamed = ["", "", ""];
        const finishes: (string | null)[] = [null, null, null];
        let usage: OpenAI.Completions.CompletionUsage | undefined;
        for await (const chunk of stream) {
            if (chunk.usage) usage = chunk.usage;
            for (const choice of chunk.choices) {
                streamed[choice.index] += choice.delta.content ?? "";
                finishes[choice.index] = choice.finish_reason ?? finishes[choice.index]!;
            }
        }
        expect(streamed).toEqual(texts);
        expect(finishes).toEqual(["length", "length", "length"]);
        expect(usage!.completion_tokens).toBe(24);
    });

    it("completions take n too; n above 16 is refused", async () => {
        const completion = await client.completions.create({model: server.modelId, prompt: "Once upon a time", max_tokens: 4, temperature: 0, n: 2});
        expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1]);
        expect(completion.choices[0]!.text).toBe(completion.choices[1]!.text);
        expect(await post("/v1/chat/completions", {model: server.modelId, messages: story, n: 17})).toMatchObject({status: 400, body: {error: {param: "n"}}});
    });
});

describe("POST /v1/embeddings", () => {
    it.skipIf(!isStories260K)("embeds a batch (the client asks for base64 and decodes it) as unit vectors, usage counted", async () => {
        const inputs = ["The cat sat on the mat.", "A dog ran in the park.", "The cat sat on the mat."];
        const result = await client.embeddings.create({model: server.modelId, input: inputs});
        expect(result.object).toBe("list");
        expect(result.data.map((entry) => entry.index)).toEqual([0, 1, 2]);
        for (const entry of result.data) {
            expect(entry.embedding).toHaveLength(64);
            expect(Math.hypot(...entry.embedding)).toBeCloseTo(1, 5);
        }
        expect(result.data[2]!.embedding).toEqual(result.data[0]!.embedding);
        expect(result.data[1]!.embedding).not.toEqual(result.data[0]!.embedding);
        const tokens = inputs.reduce((sum, text) => sum + server.runtime.countTokens(text), 0);
        expect(result.usage).toEqual({prompt_tokens: tokens, total_tokens: tokens});

        // Floats, the same vectors; token ids embed like their text; fewer dimensions are cut and renormalised.
        const floats = await post("/v1/embeddings", {model: server.modelId, input: inputs[0], encoding_format: "float"});
        (floats.body.data[0].embedding as number[]).forEach((value, index) => expect(value).toBeCloseTo(result.data[0]!.embedding[index]!, 6));
        const ids = server.runtime.tokenize(inputs[0]!).tokens;
        const byTokens = await client.embeddings.create({model: server.modelId, input: ids, encoding_format: "float"});
        expect(byTokens.data[0]!.embedding).toEqual(floats.body.data[0].embedding);
        const short = await client.embeddings.create({model: server.modelId, input: inputs[0]!, dimensions: 16, encoding_format: "float"});
        expect(short.data[0]!.embedding).toHaveLength(16);
        expect(Math.hypot(...short.data[0]!.embedding)).toBeCloseTo(1, 5);
    });

    it.skipIf(!isStories260K)("refuses more dimensions than the model has, empty input and unknown token ids", async () => {
        expect(await post("/v1/embeddings", {model: server.modelId, input: "x", dimensions: 65})).toMatchObject({status: 400, body: {error: {param: "dimensions"}}});
        expect(await post("/v1/embeddings", {model: server.modelId, input: ""})).toMatchObject({status: 400, body: {error: {param: "input"}}});
        expect(await post("/v1/embeddings", {model: server.modelId, input: [5, 100000]})).toMatchObject({status: 400, body: {error: {param: "input"}}});
        expect(await post("/v1/embeddings", {model: "nope", input: "x"})).toMatchObject({status: 404});
    });
});

describe("tokenize, detokenize, props, openapi.json", () => {
    it("round-trips text through /tokenize and /detokenize, with pieces and special tokens", async () => {
        const text = "Once upon a time, a cat ü";
        const tokenized = await post("/tokenize", {content: text});
        expect(tokenized.body.tokens).toEqual(server.runtime.tokenize(text).tokens);
        expect((await post("/detokenize", {tokens: tokenized.body.tokens})).body).toEqual({content: text});

        const special = await post("/tokenize", {content: text, add_special: true, with_pieces: true});
        const pieces = special.body.tokens as {id: number; piece: string | number[]}[];
        expect(pieces[0]).toEqual({id: 1, piece: "<s>"});
        // ü is two byte-fallback tokens: their pieces are bytes.
        expect(pieces.slice(-2).map((entry) => entry.piece)).toEqual([[0xC3], [0xBC]]);
        expect(pieces.slice(1, -2).map((entry) => entry.piece).join("").trim()).toBe("Once upon a time, a cat");

        expect(await post("/detokenize", {tokens: [5, 512]})).toMatchObject({status: 400, body: {error: {param: "tokens"}}});
        expect(await post("/tokenize", {})).toMatchObject({status: 400, body: {error: {param: "content"}}});
    });

    it("describes the model and runtime at /props", async () => {
        const props = await (await fetch(`${server.url}/props`)).json() as Record<string, any>;
        expect(props).toMatchObject({model_alias: server.modelId, total_slots: 2, default_generation_settings: {n_ctx: 512}, model: {architecture: "llama"}, runtime: {backend: "llama.cpp"}});
        // The memory check's estimate: the weights are at least most of the file, the context (2 × 512 tokens) more than nothing.
        const fileBytes = (await stat(testModelPath)).size;
        expect(props.runtime.memory_estimate.model_bytes).toBeGreaterThan(fileBytes / 2);
        expect(props.runtime.memory_estimate.context_bytes).toBeGreaterThan(0);
    });

    it("serves an OpenAPI document whose request schemas are the validators' own", async () => {
        const doc = await (await fetch(`${server.url}/openapi.json`)).json() as Record<string, any>;
        expect(doc.openapi).toBe("3.1.0");
        for (const path of ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/tokenize", "/detokenize", "/props", "/health", "/metrics"])
            expect(doc.paths[path], path).toBeDefined();
        const chat = doc.paths["/v1/chat/completions"].post.requestBody.content["application/json"].schema;
        expect(chat.required).toEqual(expect.arrayContaining(["model", "messages"]));
        expect(chat.properties.top_logprobs.anyOf).toContainEqual(expect.objectContaining({type: "integer", maximum: 20}));
        expect(chat.properties.tool_choice).toBeDefined();
        expect(doc.paths["/v1/embeddings"].post.requestBody.content["application/json"].schema.properties.encoding_format).toBeDefined();
    });
});
