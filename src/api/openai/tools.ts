import {randomUUID} from "node:crypto";
import type {ChatMessage, ResponseConstraint} from "../../runtime/types.js";
import {ApiError} from "./errors.js";
import type {ChatMessageBody, FunctionTool, ToolChoice} from "./schemas.js";

/**
 * Tool calling for templates without a tool syntax of their own (llama-server's and Ollama's
 * generic approach): the tools are described in the system prompt with the one format a call
 * takes, `{"name": …, "arguments": {…}}` (a JSON array of them when calls may run in parallel),
 * and earlier calls and results are written into the conversation in that same format.
 * - `required` or a named function: a grammar built from the tools' parameter schemas forces
 *   the answer to be such a call, so arguments always parse and match the declared parameters.
 * - `auto`: the model answers freely; an answer that is a well-formed call of a declared tool
 *   becomes `tool_calls`, anything else is text.
 * - `none`: the tools are left out of the prompt.
 */

/**
 * Most calls one answer may make with parallel_tool_calls: a small model under a grammar can
 * otherwise go on adding calls until max_tokens, and the cut-off JSON is no call at all.
 */
export const MAX_PARALLEL_CALLS = 8;

export interface ToolPlan {
    mode: "required" | "auto";
    tools: FunctionTool[];
    /** Several calls in one answer (a JSON array). */
    parallel: boolean;
}

export interface ParsedToolCall {
    id: string;
    type: "function";
    function: {name: string; arguments: string};
}

/** What a request's tools, tool_choice and parallel_tool_calls ask for; undefined when no tool may be called. */
export function planTools(tools: FunctionTool[] | null | undefined, choice: ToolChoice | null | undefined, parallel: boolean | null | undefined): ToolPlan | undefined {
    if (tools == null || tools.length === 0 || choice === "none") return undefined;
    if (typeof choice === "object" && choice != null) {
        const named = tools.filter((tool) => tool.function.name === choice.function.name);
        return {mode: "required", tools: named, parallel: false};
    }
    return {mode: choice === "required" ? "required" : "auto", tools, parallel: parallel !== false};
}

/** The system prompt text that describes the tools and the call format. */
export function toolSystemPrompt(plan: ToolPlan): string {
    const list = plan.tools.map((tool) => JSON.stringify({
        name: tool.function.name,
        ...(tool.function.description == null ? {} : {description: tool.function.description}),
        parameters: withoutAnnotations(tool.function.parameters ?? {type: "object", properties: {}})
    })).join("\n");
    const format = plan.parallel
        ? `a JSON array of calls, each {"name": <tool name>, "arguments": <arguments object>}`
        : `one JSON object {"name": <tool name>, "arguments": <arguments object>}`;
    const when = plan.mode === "required"
        ? `You must call ${plan.tools.length === 1 ? "this tool" : "one of these tools"}. Answer with ${format} and nothing else.`
        : `To call a tool, answer with ${format} and nothing else. Otherwise answer normally.`;
    return `You can call these tools:\n${list}\n${when}`;
}

/** The schema as the model reads it: `$schema` and the like only cost prompt tokens. */
function withoutAnnotations(parameters: Record<string, unknown>) {
    const {$schema: _schema, $id: _id, ...rest} = parameters;
    return rest;
}

/** For `required` and named functions: the grammar every answer must follow. */
export function toolCallConstraint(plan: ToolPlan): ResponseConstraint | undefined {
    if (plan.mode !== "required") return undefined;
    const defs: Record<string, unknown> = {};
    const calls = plan.tools.map((tool, index) => {
        const {$defs, ...parameters} = (tool.function.parameters ?? {type: "object", properties: {}}) as Record<string, unknown> & {$defs?: Record<string, unknown>};
        // $ref targets must live at the root of the combined schema.
        for (const [name, schema] of Object.entries($defs ?? {})) {
            if (name in defs && JSON.stringify(defs[name]) !== JSON.stringify(schema))
                throw new ApiError(400, `tools[${index}].function.parameters: $defs.${name} differs from another tool's definition of the same name.`, "invalid_request_error", "tools", "invalid_value");
            defs[name] = schema;
        }
        return {
            type: "object",
            properties: {name: {const: tool.function.name}, arguments: parameters},
            required: ["name", "arguments"],
            additionalProperties: false
        };
    });
    const call = calls.length === 1 ? calls[0]! : {oneOf: calls};
    const schema: Record<string, unknown> = plan.parallel ? {type: "array", items: call, minItems: 1, maxItems: MAX_PARALLEL_CALLS} : {...call};
    if (Object.keys(defs).length > 0) schema.$defs = defs;
    return {type: "json_schema", schema, name: "tool_calls", param: "tools"};
}

/**
 * The calls in a generated answer, or undefined when the answer is not a well-formed call of
 * a declared tool (under `auto` that makes it a plain answer). Calls wrapped the way models
 * trained on other formats write them (`<tool_call>…</tool_call>`, a ```json fence) count too.
 */
export function parseToolCalls(text: string, plan: ToolPlan): ParsedToolCall[] | undefined {
    const entries = unwrapCalls(text.trim());
    if (entries == null || entries.length === 0) return undefined;
    const calls: ParsedToolCall[] = [];
    for (const entry of entries) {
        if (entry == null || typeof entry !== "object") return undefined;
        const {name, arguments: args} = entry as {name?: unknown; arguments?: unknown};
        if (typeof name !== "string" || !plan.tools.some((tool) => tool.function.name === name)) return undefined;
        const parsedArgs = typeof args === "string" ? tryParse(args) : args ?? {};
        if (parsedArgs == null || typeof parsedArgs !== "object" || Array.isArray(parsedArgs)) return undefined;
        calls.push({id: newToolCallId(), type: "function", function: {name, arguments: JSON.stringify(parsedArgs)}});
    }
    return calls;
}

const TOOL_CALL_TAG = /<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g;
const JSON_FENCE = /^```(?:json)?\s*([\s\S]*?)\s*```$/;

function unwrapCalls(text: string): unknown[] | undefined {
    if (text.startsWith("<tool_call>")) {
        const bodies = [...text.matchAll(TOOL_CALL_TAG)].map((match) => tryParse(match[1]!));
        if (bodies.length === 0 || bodies.some((body) => body === undefined)) return undefined;
        return bodies.flatMap((body) => Array.isArray(body) ? body : [body]);
    }
    const json = JSON_FENCE.exec(text)?.[1] ?? text;
    if (!json.startsWith("{") && !json.startsWith("[")) return undefined;
    const value = tryParse(json);
    if (value === undefined) return undefined;
    return Array.isArray(value) ? value : [value];
}

const CALL_OPENERS = ["{", "[", "<tool_call>", "```json"];

/**
 * Whether an answer that begins with `text` is starting a tool call: "yes" once it opens a JSON
 * object or array (or a `<tool_call>` tag or ```json fence), "maybe" while it is blank or could
 * still become such an opener, "no" otherwise.
 */
export function toolCallStart(text: string): "yes" | "no" | "maybe" {
    const start = text.trimStart();
    if (start.length === 0) return "maybe";
    if (CALL_OPENERS.some((opener) => start.startsWith(opener))) return "yes";
    return CALL_OPENERS.some((opener) => opener.startsWith(start)) ? "maybe" : "no";
}

function tryParse(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

export function newToolCallId() {
    return `call_${randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

/**
 * OpenAI messages as plain chat turns: an assistant's calls are written as the JSON the model
 * was told to produce, a tool result names its tool, and the tools' description joins the
 * system prompt (a system message of its own when there is none).
 */
export function toChatMessages(messages: ChatMessageBody[], plan: ToolPlan | undefined): ChatMessage[] {
    const callNames = new Map<string, string>();
    const result = messages.map((entry): ChatMessage => {
        const content = textOf(entry.content);
        if (entry.role === "assistant" && entry.tool_calls != null && entry.tool_calls.length > 0) {
            const calls = entry.tool_calls.map((call) => {
                callNames.set(call.id, call.function.name);
                return {name: call.function.name, arguments: tryParse(call.function.arguments) ?? call.function.arguments};
            });
            const json = JSON.stringify(calls.length === 1 && plan?.parallel !== true ? calls[0] : calls);
            return {role: "assistant", content: content.length > 0 ? `${content}\n${json}` : json};
        }
        if (entry.role === "tool") {
            const name = entry.name ?? (entry.tool_call_id == null ? undefined : callNames.get(entry.tool_call_id));
            return {role: "tool", content: name == null ? content : `${name}: ${content}`};
        }
        return {role: entry.role, content};
    });
    if (plan == null) return result;
    const tools = toolSystemPrompt(plan);
    const first = result[0];
    if (first != null && (first.role === "system" || first.role === "developer"))
        return [{...first, content: `${first.content}\n\n${tools}`}, ...result.slice(1)];
    return [{role: "system", content: tools}, ...result];
}

function textOf(content: ChatMessageBody["content"]): string {
    if (content == null) return "";
    if (typeof content === "string") return content;
    return content.map((part) => ("text" in part ? String(part.text) : "")).join("");
}
