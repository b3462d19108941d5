/**
 * Engine errors. Each carries the facts a transport needs to answer well; the mapping to
 * HTTP status codes and OpenAI error objects lives in `api/openai/errors.ts`.
 */

export type EngineErrorCode =
    | "invalid_request"
    | "context_length_exceeded"
    | "model_not_found"
    | "queue_full"
    | "not_ready"
    | "shutting_down"
    | "throttled"
    | "internal_error";

export class EngineError extends Error {
    constructor(
        readonly code: EngineErrorCode,
        message: string,
        readonly param: string | null = null,
        readonly retryAfterSeconds?: number
    ) {
        super(message);
        this.name = "EngineError";
    }
}

export class InvalidRequestError extends EngineError {
    constructor(message: string, param: string | null = null) {
        super("invalid_request", message, param);
    }
}

export class ContextLengthExceededError extends EngineError {
    constructor(readonly promptTokens: number, readonly contextSize: number, param: string | null = "messages", readonly maxTokens?: number) {
        super(
            "context_length_exceeded",
            maxTokens == null
                ? `This model's maximum context length is ${contextSize} tokens, but the prompt has ${promptTokens} tokens ` +
                  `(at least 1 more is needed to generate). Shorten the prompt or start the server with a larger --ctx-size.`
                : `This model's maximum context length is ${contextSize} tokens, but ${promptTokens + maxTokens} were requested ` +
                  `(${promptTokens} in the prompt, ${maxTokens} for the completion). Lower max_tokens, shorten the prompt, ` +
                  `or send "context_overflow": "truncate" or "slide".`,
            param
        );
    }
}

export class ModelNotFoundError extends EngineError {
    constructor(model: string, available: readonly string[]) {
        super("model_not_found", `The model '${model}' does not exist. Available models: ${available.join(", ") || "none"}.`, "model");
    }
}

export class QueueFullError extends EngineError {
    constructor(queueSize: number, retryAfterSeconds = 1) {
        super("queue_full", `The server is busy: all sequences are in use and ${queueSize} requests are already waiting. Retry shortly.`, null, retryAfterSeconds);
    }
}

export class NotReadyError extends EngineError {
    constructor(message = "The model is still loading. Retry shortly.", retryAfterSeconds = 2) {
        super("not_ready", message, null, retryAfterSeconds);
    }
}

/** New work is refused for now (e.g. the device is critically hot); streams in flight go on. */
export class ThrottledError extends EngineError {
    constructor(message: string, retryAfterSeconds: number) {
        super("throttled", message, null, retryAfterSeconds);
    }
}

export class ShuttingDownError extends EngineError {
    constructor() {
        super("shutting_down", "The server is shutting down.", null, 5);
    }
}

/** A model named by a request could not be loaded (bad file, out of memory…); other models keep serving. */
export class ModelLoadError extends EngineError {
    constructor(model: string, readonly reason: string) {
        super("internal_error", `The model '${model}' could not be loaded: ${reason}`, "model");
    }
}
