import type {IncomingMessage} from "node:http";
import {ApiError} from "../openai/errors.js";
import {ApiKeySet, bearerToken} from "./api-keys.js";
import type {RateLimiter} from "./rate-limit.js";

export interface AccessOptions {
    /** Keys clients must present; none (or an empty set): no key needed. */
    apiKeys?: ApiKeySet;
    /** Requests per client (its key, else its address); unset: no limit. */
    rateLimiter?: RateLimiter;
    /** Browser origins allowed to call the API (CORS, WebSocket `Origin`); `*` allows any. Default none. */
    corsOrigins?: readonly string[];
}

/** WebSocket subprotocol carrying a key, for browsers (which cannot set headers on a WebSocket). */
export const WS_KEY_PROTOCOL_PREFIX = "bearer.";

/**
 * Who may call the API and how often. One object shared by the HTTP middleware and the WebSocket
 * upgrade, so both check keys, origins and rates the same way.
 */
export class AccessControl {
    readonly apiKeys?: ApiKeySet;
    private readonly rateLimiter?: RateLimiter;
    private readonly origins: ReadonlySet<string>;

    constructor(options: AccessOptions = {}) {
        this.apiKeys = options.apiKeys != null && options.apiKeys.size > 0 ? options.apiKeys : undefined;
        this.rateLimiter = options.rateLimiter;
        this.origins = new Set((options.corsOrigins ?? []).map((origin) => origin.replace(/\/+$/, "")));
    }

    get requiresKey() {
        return this.apiKeys != null;
    }

    get corsOrigins(): string[] {
        return [...this.origins];
    }

    /**
     * Checks the key (when keys are configured) and names the client for rate limiting: its key's
     * label, else its address. Throws a 401 `invalid_api_key`.
     */
    authenticate(key: string | undefined, address: string | undefined): string {
        if (this.apiKeys != null) {
            if (key == null || key.length === 0)
                throw unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.");
            if (!this.apiKeys.matches(key))
                throw unauthorized("Incorrect API key provided.");
            return ApiKeySet.label(key);
        }
        return `ip:${address ?? "unknown"}`;
    }

    /** Counts one request of `client`; throws a 429 `rate_limit_exceeded` with Retry-After when over its rate. */
    admit(client: string) {
        const decision = this.rateLimiter?.take(client);
        if (decision == null || decision.allowed) return;
        throw new ApiError(
            429,
            `Rate limit reached: at most ${this.rateLimiter!.burst} requests at once, then the configured rate per minute. Retry in ${decision.retryAfterSeconds} s.`,
            "rate_limit_error", null, "rate_limit_exceeded", decision.retryAfterSeconds
        );
    }

    /** A request without `Origin` (not a browser) is always allowed; a browser's only when listed. */
    allowsOrigin(origin: string | undefined): boolean {
        return origin == null || this.origins.has("*") || this.origins.has(origin.replace(/\/+$/, ""));
    }

    /**
     * The WebSocket upgrade: origin, key (header, `?api_key=` or a `bearer.<key>` subprotocol) and
     * rate. Returns the client's name; throws an `ApiError` (403, 401 or 429) to refuse it.
     */
    authorizeUpgrade(request: IncomingMessage): string {
        const origin = request.headers.origin;
        if (!this.allowsOrigin(origin))
            throw new ApiError(403, `WebSocket connections from the origin '${origin}' are not allowed; add it to corsOrigins.`, "invalid_request_error", null, "origin_not_allowed");
        const client = this.authenticate(upgradeKey(request), request.socket.remoteAddress);
        this.admit(client);
        return client;
    }
}

function unauthorized(message: string) {
    return new ApiError(401, message, "invalid_request_error", null, "invalid_api_key");
}

function upgradeKey(request: IncomingMessage): string | undefined {
    const fromHeader = bearerToken(request.headers.authorization);
    if (fromHeader != null) return fromHeader;
    const query = new URL(request.url ?? "/", "http://localhost").searchParams.get("api_key");
    if (query != null) return query;
    const protocols = (request.headers["sec-websocket-protocol"] ?? "").split(",").map((value) => value.trim());
    return protocols.find((protocol) => protocol.startsWith(WS_KEY_PROTOCOL_PREFIX))?.slice(WS_KEY_PROTOCOL_PREFIX.length);
}

/**
 * The subprotocol the server answers with: the first that is not a key (browsers fail a
 * handshake that names none when they offered some), else the key protocol itself.
 */
export function selectWsProtocol(protocols: ReadonlySet<string>): string | false {
    const list = [...protocols];
    return list.find((protocol) => !protocol.startsWith(WS_KEY_PROTOCOL_PREFIX)) ?? list[0] ?? false;
}
