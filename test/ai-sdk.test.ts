import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {generateText, streamText, tool, type ModelMessage} from "ai";
import {createOpenAICompatible} from "@ai-sdk/openai-compatible";
import {z} from "zod";
import {startTestServer, type TestServer} from "./helpers/server.js";

/** The Vercel AI SDK's OpenAI-compatible provider: a second widely used client, its own request shapes. */

let server: TestServer;
let provider: ReturnType<typeof createOpenAICompatible>;

beforeAll(async () => {
    server = await startTestServer({parallel: 2, contextSize: 2048});
    provider = createOpenAICompatible({baseURL: `${server.url}/v1`, name: "edge-llm"});
});
afterAll(() => server?.stop());

const executed: {city: string; unit: string}[] = [];
const tools = {
    getWeather: tool({
        description: "Current weather in a city",
        inputSchema: z.object({city: z.enum(["Paris", "Rome"]), unit: z.enum(["C", "F"])}),
        execute: async (input) => {
            executed.push(input);
            return {temperature: 21, unit: input.unit, sky: "clear"};
        }
    })
};

describe("Vercel AI SDK (openai-compatible provider)", () => {
    it("does a tool-calling round trip: call, tool result message, next turn answered", async () => {
        const messages: ModelMessage[] = [{role: "user", content: "What is the weather in Rome?"}];
        const first = await generateText({model: provider(server.modelId), messages, tools, toolChoice: "required", temperature: 0, maxOutputTokens: 1000});
        expect(first.finishReason).toBe("tool-calls");
        expect(first.toolCalls.length).toBeGreaterThanOrEqual(1);
        for (const call of first.toolCalls) {
            expect(call.toolName).toBe("getWeather");
            expect(call.toolCallId).toMatch(/^call_/);
            expect(["Paris", "Rome"]).toContain((call.input as {city: string}).city);
        }
        // The SDK validated the arguments against the zod schema and ran the tool.
        expect(executed.length).toBe(first.toolCalls.length);
        expect(first.toolResults).toHaveLength(first.toolCalls.length);

        // The SDK's assistant tool-call message and tool-result message go back to the server.
        const history: ModelMessage[] = [...messages, ...first.response.messages];
        expect(history.map((message) => message.role)).toEqual(["user", "assistant", "tool"]);
        const second = await generateText({model: provider(server.modelId), messages: history, tools, toolChoice: "none", temperature: 0, maxOutputTokens: 16});
        expect(second.finishReason).toBe("length");
        expect(second.text.length).toBeGreaterThan(0);
        expect(second.toolCalls).toEqual([]);
        // The call and its result reached the prompt: more input than the question alone.
        const alone = await generateText({model: provider(server.modelId), messages, tools, toolChoice: "none", temperature: 0, maxOutputTokens: 1});
        expect(second.usage.inputTokens).toBeGreaterThan(alone.usage.inputTokens! + 20);
    });

    it("streams a forced call that the SDK reassembles from delta.tool_calls", async () => {
        const result = streamText({
            model: provider(server.modelId),
            messages: [{role: "user", content: "Weather in Paris, please."}],
            tools: {getWeather: tool({description: tools.getWeather.description, inputSchema: tools.getWeather.inputSchema})},
            toolChoice: {type: "tool", toolName: "getWeather"},
            temperature: 0,
            maxOutputTokens: 300
        });
        const parts: string[] = [];
        for await (const part of result.fullStream) parts.push(part.type);
        const calls = await result.toolCalls;
        expect(calls).toHaveLength(1);
        expect(calls[0]!.toolName).toBe("getWeather");
        expect(z.object({city: z.enum(["Paris", "Rome"]), unit: z.enum(["C", "F"])}).safeParse(calls[0]!.input).success).toBe(true);
        expect(parts).toContain("tool-input-start");
        expect(parts).toContain("tool-call");
        expect(await result.finishReason).toBe("tool-calls");
    });
});
