import type {PowerStatus} from "../../power/status.js";
import {z} from "zod";
import type {FinishReason, GenerationRequest, Timings, Usage} from "../../runtime/types.js";
import {ApiError, type MappedError, type OpenAIErrorObject} from "../openai/errors.js";
import {toOpenAITimings, toOpenAIUsage, type OpenAIUsage} from "../openai/format.js";
import {chatCompletionBody, chatToGenerationRequest, completionBody, completionToGenerationRequest} from "../openai/schemas.js";

/**
 * The WebSocket protocol's frames: parsing what clients send and encoding what the server
 * sends. No sockets here. The contract is docs/websocket.md.
 */

export const MAX_ID_LENGTH = 128;

// ── client → server ────────────────────────────────────────────────────────────────────────

const frameId = z.string().min(1).max(MAX_ID_LENGTH);
const envelope = z.object({type: z.string()}).loose();
const requestFrame = z.object({type: z.enum(["chat", "completion"]), id: frameId, body: z.unknown()});
const cancelFrame = z.object({type: z.literal("cancel"), id: frameId});
// The body is validated under its own key so error params read `body.messages`, `body.model`…
const chatFrameBody = z.object({body: chatCompletionBody});
const completionFrameBody = z.object({body: completionBody});

export type RequestFrame = z.infer<typeof requestFrame>;
export type ClientFrame =
    | RequestFrame
    | z.infer<typeof cancelFrame>
    /** Every field of a ping is echoed back in its pong. */
    | {type: "ping"; fields: Record<string, unknown>};

export type ParsedFrame =
    | {ok: true; frame: ClientFrame}
    /** `id` is the frame's id when it had a valid one, so the error can name the request. */
    | {ok: false; id: string | null; error: unknown};

const FRAME_TYPES = "chat, completion, cancel, ping";

/** Parses one text frame. Never throws: a bad frame becomes `{ok: false}` with the reason. */
export function parseClientFrame(text: string): ParsedFrame {
    let raw: unknown;
    try {
        raw = JSON.parse(text);
    } catch (error) {
        return fail(null, 400, `The frame is not valid JSON: ${(error as Error).message}`, null, "invalid_json");
    }
    const head = envelope.safeParse(raw);
    if (!head.success)
        return fail(null, 400, `A frame must be a JSON object with a string 'type' (one of ${FRAME_TYPES}).`, "type", "invalid_frame");
    const fields = head.data;
    const id = frameId.safeParse(fields.id).success ? fields.id as string : null;

    switch (fields.type) {
        case "chat":
        case "completion": {
            const parsed = requestFrame.safeParse(fields);
            return parsed.success ? {ok: true, frame: parsed.data} : {ok: false, id, error: parsed.error};
        }
        case "cancel": {
            const parsed = cancelFrame.safeParse(fields);
            return parsed.success ? {ok: true, frame: parsed.data} : {ok: false, id, error: parsed.error};
        }
        case "ping":
            return {ok: true, frame: {type: "ping", fields}};
        default:
            return fail(id, 400, `Unknown frame type '${fields.type.slice(0, 64)}'. Expected one of ${FRAME_TYPES}.`, "type", "unknown_type");
    }
}

export interface PreparedRequest {
    request: GenerationRequest;
    /** Completions with `echo`: the prompt goes out as the first delta. */
    echo?: string;
}

/**
 * Validates a request frame's body with the HTTP endpoint's schema and maps it the same way.
 * Throws a `ZodError` (→ 400 `invalid_value`, param `body.…`) when the body is invalid.
 * `body.stream` and `body.stream_options` are accepted and ignored: a socket always streams.
 */
/** `connectionSession` is the socket's implicit session, used when the body names none. */
export function toGenerationRequest(frame: RequestFrame, connectionSession?: string): PreparedRequest {
    if (frame.type === "chat") {
        const request = chatToGenerationRequest(chatFrameBody.parse({body: frame.body}).body);
        return {request: {...request, session: request.session ?? connectionSession}};
    }
    const body = completionFrameBody.parse({body: frame.body}).body;
    const parsed = completionToGenerationRequest(body);
    const request = {...parsed, session: parsed.session ?? connectionSession};
    const echo = body.echo === true && request.input.kind === "completion" ? request.input.prompt : undefined;
    return {request, echo};
}

/** An error about the frame itself (not its body), in the shape `toOpenAIError` maps. */
export function frameError(status: number, message: string, code: string, param: string | null = null) {
    return new ApiError(status, message, "invalid_request_error", param, code);
}

function fail(id: string | null, status: number, message: string, param: string | null, code: string): ParsedFrame {
    return {ok: false, id, error: frameError(status, message, code, param)};
}

// ── server → client ────────────────────────────────────────────────────────────────────────

export type WsFinishReason = FinishReason;

export interface DeltaFrame {type: "delta"; id: string; text: string; tokens: number}
export interface DoneFrame {
    type: "done";
    id: string;
    finish_reason: WsFinishReason;
    usage: OpenAIUsage;
    timings: ReturnType<typeof toOpenAITimings>;
}
export interface ErrorFrame {
    type: "error";
    id: string | null;
    status: number;
    error: OpenAIErrorObject;
    /** Seconds to wait before retrying (e.g. `queue_full`). */
    retry_after?: number;
}
export type PongFrame = {type: "pong"} & Record<string, unknown>;
export type ServerFrame = DeltaFrame | DoneFrame | ErrorFrame | PongFrame;

/**
 * The constant start of every delta frame of one request, serialized once, so a token costs
 * one `JSON.stringify` of its text and one string concatenation.
 */
export function deltaPrefix(id: string): string {
    return `{"type":"delta","id":${JSON.stringify(id)},"text":`;
}

export function deltaFrame(prefix: string, text: string, tokens: number): string {
    return `${prefix}${JSON.stringify(text)},"tokens":${tokens}}`;
}

export function doneFrame(id: string, finishReason: WsFinishReason, usage: Usage, timings: Timings): string {
    const frame: DoneFrame = {
        type: "done",
        id,
        finish_reason: finishReason,
        usage: toOpenAIUsage(usage),
        timings: toOpenAITimings(timings, usage)
    };
    return JSON.stringify(frame);
}

/** The `done` of a request cancelled before it produced a token (e.g. while queued). */
export function cancelledFrame(id: string, promptTokens: number, waitedMs: number): string {
    return doneFrame(
        id,
        "cancelled",
        {promptTokens, completionTokens: 0, totalTokens: promptTokens, cachedPromptTokens: 0},
        {
            queuedMs: Math.round(waitedMs * 100) / 100,
            timeToFirstTokenMs: 0,
            promptMs: 0,
            generationMs: 0,
            promptTokensPerSecond: 0,
            generationTokensPerSecond: 0
        }
    );
}

export function errorFrame(id: string | null, mapped: MappedError): string {
    const frame: ErrorFrame = {type: "error", id, status: mapped.status, error: mapped.error};
    if (mapped.retryAfter != null)
        frame.retry_after = mapped.retryAfter;
    return JSON.stringify(frame);
}

/** `{"type":"power",…}`: sent to every socket on each power level change (and once on connect when not nominal). */
export function powerFrame(status: PowerStatus): string {
    return JSON.stringify({type: "power", level: status.level, reason: status.reason, since: status.since, limits: status.limits});
}

export function pongFrame(ping: Record<string, unknown>): string {
    return JSON.stringify({...ping, type: "pong"});
}
