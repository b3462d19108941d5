import {afterAll, beforeAll, describe, expect, it} from "vitest";
import OpenAI from "openai";
import {startTestServer, type TestServer} from "./helpers/server.js";
import {chatCompletionBody, chatToGenerationRequest} from "../src/api/openai/schemas.js";
import {parseToolCalls, planTools} from "../src/api/openai/tools.js";
import {lazyToolGrammar, withLazyToolGrammar} from "../src/api/openai/auto-tools.js";
import {singleRuntimeHost} from "../src/runtime/model-pool.js";
import type {GenerationEvent, GenerationStream} from "../src/runtime/types.js";

let server: TestServer;
let client: OpenAI;

beforeAll(async () => {
    // Tool descriptions cost prompt tokens (the test model's vocabulary is nearly characters).
    server = await startTestServer({parallel: 2, contextSize: 2048});
    client = new OpenAI({baseURL: `${server.url}/v1`, apiKey: "not-needed", maxRetries: 0});
});
afterAll(() => server?.stop());

const weather: OpenAI.Chat.Completions.ChatCompletionFunctionTool = {
    type: "function",
    function: {
        name: "get_weather",
        description: "Current weather in a city",
        parameters: {
            type: "object",
            properties: {city: {type: "string", enum: ["Paris", "Rome"]}, unit: {type: "string", enum: ["C", "F"]}},
            required: ["city", "unit"],
            additionalProperties: false
        }
    }
};
const time: OpenAI.Chat.Completions.ChatCompletionFunctionTool = {
    type: "function",
    function: {name: "get_time", description: "Local time in a city", parameters: {type: "object", properties: {city: {type: "string", enum: ["Oslo", "Lima"]}}, required: ["city"]}}
};
const ask = [{role: "user" as const, content: "What is the weather in Paris?"}];

function expectWeatherArguments(text: string) {
    const args = JSON.parse(text) as {city: string; unit: string};
    expect(Object.keys(args).sort()).toEqual(["city", "unit"]);
    expect(["Paris", "Rome"]).toContain(args.city);
    expect(["C", "F"]).toContain(args.unit);
}

describe("tools with tool_choice required", () => {
    it("answers with a call whose arguments parse and match the declared parameters", async () => {
        const completion = await client.chat.completions.create({
            model: server.modelId, messages: ask, tools: [weather, time], tool_choice: "required",
            parallel_tool_calls: false, temperature: 0, max_tokens: 200
        });
        const choice = completion.choices[0]!;
        expect(choice.finish_reason).toBe("tool_calls");
        expect(choice.message.content).toBeNull();
        expect(choice.message.tool_calls).toHaveLength(1);
        const call = choice.message.tool_calls![0]! as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
        expect(call.type).toBe("function");
        expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
        expect(["get_weather", "get_time"]).toContain(call.function.name);
        const args = JSON.parse(call.function.arguments) as Record<string, string>;
        if (call.function.name === "get_weather") expectWeatherArguments(call.function.arguments);
        else expect(["Oslo", "Lima"]).toContain(args.city);
    });

    it("with parallel calls allowed, answers with one or more calls, each valid", async () => {
        const completion = await client.chat.completions.create({
            model: server.modelId, messages: ask, tools: [weather], tool_choice: "required", temperature: 0, max_tokens: 1000
        });
        const calls = completion.choices[0]!.message.tool_calls as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall[];
        expect(completion.choices[0]!.finish_reason).toBe("tool_calls");
        expect(calls.length).toBeGreaterThanOrEqual(1);
        expect(new Set(calls.map((call) => call.id)).size).toBe(calls.length);
        for (const call of calls) {
            expect(call.function.name).toBe("get_weather");
            expectWeatherArguments(call.function.arguments);
        }
    });
});

describe("a named function", () => {
    it("calls exactly that function", async () => {
        const completion = await client.chat.completions.create({
            model: server.modelId, messages: ask, tools: [weather, time],
            tool_choice: {type: "function", function: {name: "get_time"}}, temperature: 0.7, seed: 3, max_tokens: 200
        });
        const calls = completion.choices[0]!.message.tool_calls as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall[];
        expect(calls).toHaveLength(1);
        expect(calls[0]!.function.name).toBe("get_time");
        expect(["Oslo", "Lima"]).toContain((JSON.parse(calls[0]!.function.arguments) as {city: string}).city);
    });
});

describe("streamed tool calls", () => {
    it("arrive as delta.tool_calls chunks while generated (id, type and name first, then argument fragments) that reassemble into the call", async () => {
        const request = {
            model: server.modelId, messages: ask, tools: [weather], tool_choice: {type: "function" as const, function: {name: "get_weather"}},
            temperature: 0, max_tokens: 200
        };
        const stream = await client.chat.completions.create({...request, stream: true, stream_options: {include_usage: true}});
        const calls: {id?: string; type?: string; name: string; arguments: string}[] = [];
        let finish: string | null = null;
        let content = "";
        let usage: OpenAI.Completions.CompletionUsage | undefined;
        let argumentChunks = 0;
        for await (const chunk of stream) {
            if (chunk.usage != null) usage = chunk.usage;
            const choice = chunk.choices[0];
            if (choice == null) continue;
            content += choice.delta.content ?? "";
            finish = choice.finish_reason ?? finish;
            for (const delta of choice.delta.tool_calls ?? []) {
                if (delta.id != null) {
                    expect(delta.type).toBe("function");
                    expect(delta.function?.name).toBeTruthy();
                    calls[delta.index] = {id: delta.id, type: delta.type, name: delta.function!.name!, arguments: delta.function?.arguments ?? ""};
                } else {
                    expect(calls[delta.index]).toBeDefined();
                    calls[delta.index]!.arguments += delta.function?.arguments ?? "";
                    argumentChunks++;
                }
            }
        }
        expect(content).toBe("");
        expect(finish).toBe("tool_calls");
        // Streamed while generated: the arguments arrive in many fragments, not at the end in one.
        expect(argumentChunks).toBeGreaterThan(5);
        expect(calls).toHaveLength(1);
        expect(calls[0]!.name).toBe("get_weather");
        expectWeatherArguments(calls[0]!.arguments);
        expect(usage!.completion_tokens).toBeGreaterThan(10);

        // The same request without streaming gives the same call (greedy).
        const whole = await client.chat.completions.create(request);
        const call = whole.choices[0]!.message.tool_calls![0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall;
        expect(JSON.parse(call.function.arguments)).toEqual(JSON.parse(calls[0]!.arguments));
    });
});

describe("a tool-calling round trip", () => {
    it("accepts the assistant's tool_calls and the tool result in the next turn, which is answered", async () => {
        const first = await client.chat.completions.create({
            model: server.modelId, messages: ask, tools: [weather], tool_choice: "required", parallel_tool_calls: false, temperature: 0, max_tokens: 200
        });
        const message = first.choices[0]!.message;
        const call = message.tool_calls![0]!;
        const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
            ...ask,
            {role: "assistant", content: null, tool_calls: message.tool_calls},
            {role: "tool", tool_call_id: call.id, content: JSON.stringify({temperature: 21, sky: "clear"})}
        ];
        const second = await client.chat.completions.create({model: server.modelId, messages, tools: [weather], temperature: 0, max_tokens: 12});
        const answer = second.choices[0]!;
        expect(answer.message.role).toBe("assistant");
        expect(answer.finish_reason === "tool_calls" || (answer.message.content ?? "").length > 0).toBe(true);
        // The call and its result are part of the prompt: more tokens than the first turn's.
        expect(second.usage!.prompt_tokens).toBeGreaterThan(first.usage!.prompt_tokens + 10);

        // tool_choice none: the tools are not offered; the answer is text.
        const none = await client.chat.completions.create({model: server.modelId, messages, tools: [weather], tool_choice: "none", temperature: 0, max_tokens: 8});
        expect(none.choices[0]!.message.tool_calls ?? []).toEqual([]);
        expect(none.usage!.prompt_tokens).toBeLessThan(second.usage!.prompt_tokens);
    });

    it("auto answers end to end, streaming and not, as text or as a well-formed call", async () => {
        const completion = await client.chat.completions.create({model: server.modelId, messages: ask, tools: [weather], temperature: 0, max_tokens: 16});
        const choice = completion.choices[0]!;
        if (choice.finish_reason === "tool_calls") expect(choice.message.tool_calls!.length).toBeGreaterThan(0);
        else expect(choice.message.content!.length).toBeGreaterThan(0);

        const stream = await client.chat.completions.create({model: server.modelId, messages: ask, tools: [weather], temperature: 0, max_tokens: 16, stream: true});
        let text = "";
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
        expect(text).toBe(choice.message.content ?? "");
    });
});

describe("tool errors", () => {
    async function status(body: Record<string, unknown>) {
        const response = await fetch(`${server.url}/v1/chat/completions`, {
            method: "POST", headers: {"content-type": "application/json"},
            body: JSON.stringify({model: server.modelId, messages: ask, ...body})
        });
        return {status: response.status, error: ((await response.json()) as {error: {param: string | null; message: string}}).error};
    }

    it("are 400s naming the parameter", async () => {
        expect(await status({tools: [weather], response_format: {type: "json_schema", json_schema: {name: "x", schema: {type: "object"}}}}))
            .toMatchObject({status: 400, error: {param: "response_format"}});
        expect(await status({tools: [weather], tool_choice: {type: "function", function: {name: "nope"}}}))
            .toMatchObject({status: 400, error: {param: "tool_choice"}});
        expect(await status({tool_choice: "required"})).toMatchObject({status: 400, error: {param: "tool_choice"}});
        expect(await status({tools: [{type: "function", function: {name: "has space"}}]})).toMatchObject({status: 400, error: {param: "tools[0].function.name"}});
        expect(await status({tools: [weather, weather]})).toMatchObject({status: 400, error: {param: "tools[1].function.name"}});
        // A keyword the grammar cannot enforce is refused rather than silently ignored.
        const pattern = {type: "function", function: {name: "f", parameters: {type: "object", properties: {code: {type: "string", pattern: "^[A-Z]+$"}}}}};
        const refused = await status({tools: [pattern], tool_choice: "required"});
        expect(refused).toMatchObject({status: 400, error: {param: "tools"}});
        expect(refused.error.message).toContain("pattern");
    });
});

describe("auto with the call grammar applied lazily", () => {
    /**
     * The test model never opens its answers with "{" on its own, so the first, free attempt is
     * scripted here; the second attempt is the real runtime under the real call grammar.
     */
    function scripted(texts: string[]): GenerationStream & {closed: boolean} {
        const stream = {
            id: "scripted", model: server.modelId, created: 0, promptTokens: 1, closed: false,
            async* [Symbol.asyncIterator](): AsyncGenerator<GenerationEvent> {
                try {
                    for (const text of texts) yield {type: "delta", text, tokens: 1};
                    const usage = {promptTokens: 1, completionTokens: texts.length, totalTokens: 1 + texts.length, cachedPromptTokens: 0};
                    yield {type: "done", finishReason: "stop", usage, timings: {queuedMs: 0, timeToFirstTokenMs: 0, promptMs: 0, generationMs: 0, promptTokensPerSecond: 0, generationTokensPerSecond: 0}};
                } finally {
                    stream.closed = true;
                }
            }
        };
        return stream;
    }

    async function plannedRequest() {
        const body = chatCompletionBody.parse({model: server.modelId, messages: ask, tools: [weather], tool_choice: "auto", temperature: 0, max_tokens: 1000});
        const plan = planTools(body.tools, body.tool_choice, body.parallel_tool_calls)!;
        const request = chatToGenerationRequest(body, plan);
        const grammar = await lazyToolGrammar(singleRuntimeHost(server.runtime), request, plan);
        return {plan, request, grammar: grammar!};
    }

    it("regenerates an answer that opens a call under the call grammar, counting both attempts", async () => {
        const {plan, request, grammar} = await plannedRequest();
        expect(grammar).toBeDefined();
        const first = scripted([" ", "{", "\"na"]);
        let text = "";
        let completionTokens = 0;
        for await (const event of withLazyToolGrammar(server.runtime, request, grammar, first)) {
            if (event.type === "delta") text += event.text;
            else completionTokens = event.usage.completionTokens;
        }
        expect(first.closed).toBe(true);
        const calls = parseToolCalls(text, plan)!;
        if (calls == null) throw new Error(`not a call: ${text}`);
        expect(calls.length).toBeGreaterThanOrEqual(1);
        expectWeatherArguments(calls[0]!.function.arguments);
        // Two tokens of the dropped attempt (" ", "{") plus the forced call's own.
        expect(completionTokens).toBeGreaterThan(2 + 10);
    });

    it("passes a free answer through untouched, and skips the grammar when the schemas cannot be enforced", async () => {
        const {request, grammar} = await plannedRequest();
        const first = scripted(["\n", "Once", " upon"]);
        const events: GenerationEvent[] = [];
        for await (const event of withLazyToolGrammar(server.runtime, request, grammar, first)) events.push(event);
        expect(events.map((event) => event.type === "delta" ? event.text : event.type)).toEqual(["\n", "Once", " upon", "done"]);

        const pattern = {type: "function", function: {name: "f", parameters: {type: "object", properties: {code: {type: "string", pattern: "^[A-Z]+$"}}}}};
        const body = chatCompletionBody.parse({model: server.modelId, messages: ask, tools: [pattern]});
        const plan = planTools(body.tools, body.tool_choice, body.parallel_tool_calls)!;
        expect(await lazyToolGrammar(singleRuntimeHost(server.runtime), chatToGenerationRequest(body, plan), plan)).toBeUndefined();
        // …and such a request still works end to end.
        const response = await client.chat.completions.create({model: server.modelId, messages: ask, tools: [pattern as OpenAI.Chat.Completions.ChatCompletionFunctionTool], max_tokens: 8, temperature: 0});
        expect(response.choices[0]!.message.content!.length).toBeGreaterThan(0);
    });
});

describe("tools with logprobs", () => {
    it("a forced call comes back with logprobs null, whatever the temperature", async () => {
        const completion = await client.chat.completions.create({
            model: server.modelId, messages: ask, tools: [weather], tool_choice: {type: "function", function: {name: "get_weather"}},
            logprobs: true, top_logprobs: 2, temperature: 0.8, seed: 1, max_tokens: 200
        });
        expect(completion.choices[0]!.finish_reason).toBe("tool_calls");
        expect(completion.choices[0]!.logprobs).toBeNull();
    });
});
