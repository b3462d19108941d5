import {describe, expect, it} from "vitest";
import {ToolCallStreamer, type ToolCallDelta} from "./tool-stream.js";

function reassemble(deltas: ToolCallDelta[]) {
    const calls: {id: string; name: string; arguments: string}[] = [];
    for (const delta of deltas) {
        if ("id" in delta) calls[delta.index] = {id: delta.id, name: delta.function.name, arguments: ""};
        else calls[delta.index]!.arguments += delta.function.arguments;
    }
    return calls;
}

describe("ToolCallStreamer", () => {
    const answer = `[ {"name": "search", "arguments": {"q": "a } \\" [ tricky", "opts": {"n": [1, 2]}}},\n  {"name":"get_time","arguments":{}} ]`;

    it("streams each call's head, then its arguments as they grow, whatever the chunking", () => {
        for (const size of [1, 3, 7, answer.length]) {
            const streamer = new ToolCallStreamer();
            const deltas: ToolCallDelta[] = [];
            for (let at = 0; at < answer.length; at += size)
                deltas.push(...streamer.push(answer.slice(at, at + size)));
            const calls = reassemble(deltas);
            expect(calls.map((call) => call.name)).toEqual(["search", "get_time"]);
            expect(JSON.parse(calls[0]!.arguments)).toEqual({q: "a } \" [ tricky", opts: {n: [1, 2]}});
            expect(JSON.parse(calls[1]!.arguments)).toEqual({});
            expect(calls[0]!.id).not.toBe(calls[1]!.id);
            expect(streamer.started).toBe(2);
            if (size === 1) expect(deltas.filter((delta) => delta.index === 0).length).toBeGreaterThan(20);
        }
    });

    it("sends the head only once the name is complete, and nothing past a cut-off answer", () => {
        const streamer = new ToolCallStreamer();
        expect(streamer.push(`{"name": "sea`)).toEqual([]);
        const head = streamer.push(`rch", "arguments": {"q": "ca`);
        expect(head[0]).toMatchObject({index: 0, type: "function", function: {name: "search", arguments: ""}});
        expect(head.slice(1)).toEqual([{index: 0, function: {arguments: `{"q": "ca`}}]);
        expect(streamer.started).toBe(1);
    });
});
