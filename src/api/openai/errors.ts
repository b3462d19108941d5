import {ZodError} from "zod";
import {EngineError, type EngineErrorCode} from "../../runtime/errors.js";

/** OpenAI's error object: `{"error": {message, type, param, code}}`. */
export interface OpenAIErrorObject {
    message: string;
    type: string;
    param: string | null;
    code: string | null;
}

export interface MappedError {
    status: number;
    error: OpenAIErrorObject;
    /** Seconds, for a `Retry-After` header. */
    retryAfter?: number;
}

/** An error raised by the API layer itself (bad JSON, body too large, unknown route). */
export class ApiError extends Error {
    constructor(
        readonly status: number,
        message: string,
        readonly type = "invalid_request_error",
        readonly param: string | null = null,
        readonly code: string | null = null,
        /** Seconds, for a `Retry-After` header (429, 503). */
        readonly retryAfterSeconds?: number
    ) {
        super(message);
        this.name = "ApiError";
    }
}

const engineStatus: Record<EngineErrorCode, {status: number; type: string}> = {
    invalid_request: {status: 400, type: "invalid_request_error"},
    context_length_exceeded: {status: 400, type: "invalid_request_error"},
    model_not_found: {status: 404, type: "invalid_request_error"},
    queue_full: {status: 429, type: "rate_limit_error"},
    not_ready: {status: 503, type: "server_error"},
    shutting_down: {status: 503, type: "server_error"},
    throttled: {status: 503, type: "server_error"},
    internal_error: {status: 500, type: "server_error"}
};

/** Maps anything thrown while serving a request to a status and an OpenAI error object. */
export function toOpenAIError(error: unknown): MappedError {
    if (error instanceof ApiError)
        return {status: error.status, error: {message: error.message, type: error.type, param: error.param, code: error.code}, retryAfter: error.retryAfterSeconds};

    if (error instanceof ZodError) {
        const issue = error.issues[0];
        const param = issue == null || issue.path.length === 0 ? null : formatPath(issue.path);
        const message = issue == null
            ? "Invalid request body"
            : param == null ? issue.message : `Invalid value for '${param}': ${issue.message}`;
        return {status: 400, error: {message, type: "invalid_request_error", param, code: "invalid_value"}};
    }

    if (error instanceof EngineError) {
        const {status, type} = engineStatus[error.code];
        return {
            status,
            error: {message: error.message, type, param: error.param, code: error.code},
            retryAfter: error.retryAfterSeconds
        };
    }

    return {
        status: 500,
        error: {message: `Internal error: ${(error as Error)?.message ?? String(error)}`, type: "server_error", param: null, code: "internal_error"}
    };
}

function formatPath(path: readonly PropertyKey[]) {
    return path.map((part, index) => typeof part === "number" ? `[${part}]` : `${index === 0 ? "" : "."}${String(part)}`).join("");
}
