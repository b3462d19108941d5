import {describe, expect, it} from "vitest";
import {parseToolCalls, planTools, toChatMessages, toolCallStart, toolCallConstraint} from "./tools.js";
import type {FunctionTool} from "./schemas.js";

const weather: FunctionTool = {type: "function", function: {name: "get_weather", parameters: {type: "object", properties: {city: {type: "string"}}}}};
const time: FunctionTool = {type: "function", function: {name: "get_time"}};

describe("planTools", () => {
    it("maps tool_choice and parallel_tool_calls", () => {
        expect(planTools([weather, time], undefined, undefined)).toMatchObject({mode: "auto", parallel: true});
        expect(planTools([weather, time], "required", false)).toMatchObject({mode: "required", parallel: false});
        expect(planTools([weather, time], {type: "function", function: {name: "get_time"}}, true)).toEqual({mode: "required", tools: [time], parallel: false});
        expect(planTools([weather], "none", undefined)).toBeUndefined();
        expect(planTools([], "auto", undefined)).toBeUndefined();
    });
});

describe("parseToolCalls", () => {
    const plan = planTools([weather, time], "auto", true)!;

    it("reads a call, an array of calls, tagged and fenced calls, and string arguments", () => {
        const names = (text: string) => parseToolCalls(text, plan)?.map((call) => [call.function.name, JSON.parse(call.function.arguments)]);
        expect(names(` {"name": "get_weather", "arguments": {"city": "Oslo"}} `)).toEqual([["get_weather", {city: "Oslo"}]]);
        expect(names(`[{"name": "get_time", "arguments": {}}, {"name": "get_weather", "arguments": "{\\"city\\": \\"Rome\\"}"}]`))
            .toEqual([["get_time", {}], ["get_weather", {city: "Rome"}]]);
        expect(names(`<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n<tool_call>{"name": "get_time"}</tool_call>`)).toEqual([["get_time", {}], ["get_time", {}]]);
        expect(names("```json\n{\"name\": \"get_time\", \"arguments\": {}}\n```")).toEqual([["get_time", {}]]);
    });

    it("refuses text, unknown tools, non-object arguments and cut-off JSON", () => {
        for (const text of ["Once upon a time", `{"name": "launch", "arguments": {}}`, `{"name": "get_time", "arguments": [1]}`, `{"name": "get_time", "argu`, "[]", "{}"])
            expect(parseToolCalls(text, plan), text).toBeUndefined();
    });
});

describe("toolCallStart", () => {
    it("is sure only once an opener is complete, and says no as soon as none can follow", () => {
        expect(["", "  \n", "<", "<tool_", "`", "```js"].map(toolCallStart)).toEqual(Array(6).fill("maybe"));
        expect([" {", "[", "<tool_call>", "```json\n{"].map(toolCallStart)).toEqual(Array(4).fill("yes"));
        expect(["Hello", " <html>", "```python"].map(toolCallStart)).toEqual(Array(3).fill("no"));
    });
});

describe("toChatMessages", () => {
    it("writes calls and results into the turns and the tools into the system prompt", () => {
        const plan = planTools([weather], "auto", false)!;
        const messages = toChatMessages([
            {role: "system", content: "Be brief."},
            {role: "user", content: "Weather?"},
            {role: "assistant", content: null, tool_calls: [{id: "call_1", type: "function", function: {name: "get_weather", arguments: "{\"city\":\"Oslo\"}"}}]},
            {role: "tool", tool_call_id: "call_1", content: [{type: "text", text: "sunny"}]}
        ], plan);
        expect(messages).toHaveLength(4);
        expect(messages[0]!.role).toBe("system");
        expect(messages[0]!.content).toMatch(/^Be brief\.\n\nYou can call these tools:\n\{"name":"get_weather"/);
        expect(messages[2]).toEqual({role: "assistant", content: `{"name":"get_weather","arguments":{"city":"Oslo"}}`});
        expect(messages[3]).toEqual({role: "tool", content: "get_weather: sunny"});
        // Without a system message the tools get one of their own.
        expect(toChatMessages([{role: "user", content: "Hi"}], plan)[0]!.role).toBe("system");
        expect(toChatMessages([{role: "user", content: "Hi"}], undefined)).toEqual([{role: "user", content: "Hi"}]);
    });
});

describe("toolCallConstraint", () => {
    it("builds one call schema per tool, an array (at most 8) in parallel, with $defs hoisted", () => {
        const withDefs: FunctionTool = {type: "function", function: {name: "f", parameters: {type: "object", properties: {a: {$ref: "#/$defs/A"}}, $defs: {A: {type: "string"}}}}};
        const single = toolCallConstraint(planTools([withDefs], "required", false)!)!;
        expect(single).toMatchObject({type: "json_schema", param: "tools", schema: {type: "object", properties: {name: {const: "f"}}, $defs: {A: {type: "string"}}}});
        const parallel = toolCallConstraint(planTools([weather, time], "required", true)!)!;
        expect(parallel).toMatchObject({schema: {type: "array", minItems: 1, maxItems: 8, items: {oneOf: [{}, {}]}}});
        expect(toolCallConstraint(planTools([weather], "auto", true)!)).toBeUndefined();
    });
});
