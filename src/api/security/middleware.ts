import type {MiddlewareHandler} from "hono";
import {cors} from "hono/cors";
import {getConnInfo} from "@hono/node-server/conninfo";
import type {AccessControl} from "./access.js";
import {bearerToken} from "./api-keys.js";

export interface HttpAccessOptions {
    /** Paths anyone may call without a key (e.g. `/health`). */
    openPaths?: readonly string[];
    /** Path prefixes with their own authentication (e.g. `/admin`, which has its own token). */
    ownAuthPrefixes?: readonly string[];
    /** Path prefixes whose requests count against the rate limit. Default `/v1/`. */
    rateLimitedPrefixes?: readonly string[];
}

/** Keys and rate limits for HTTP requests: 401 `invalid_api_key`, 429 `rate_limit_exceeded` + Retry-After. */
export function httpAccess(access: AccessControl, options: HttpAccessOptions = {}): MiddlewareHandler {
    const open = new Set(options.openPaths ?? []);
    const ownAuth = options.ownAuthPrefixes ?? [];
    const limited = options.rateLimitedPrefixes ?? ["/v1/"];
    return async (c, next) => {
        const path = c.req.path;
        if (c.req.method === "OPTIONS" || open.has(path) || ownAuth.some((prefix) => path.startsWith(prefix)))
            return next();
        const client = access.authenticate(bearerToken(c.req.header("authorization")), clientAddress(c));
        if (limited.some((prefix) => path.startsWith(prefix)))
            access.admit(client);
        await next();
    };
}

/** CORS for the configured origins; none configured: no CORS headers at all (browsers on other origins are refused). */
export function httpCors(access: AccessControl): MiddlewareHandler | undefined {
    const origins = access.corsOrigins;
    if (origins.length === 0) return undefined;
    return cors({
        origin: origins.includes("*") ? "*" : origins,
        allowHeaders: ["Authorization", "Content-Type", "X-Session-Id"],
        allowMethods: ["GET", "POST", "OPTIONS"],
        exposeHeaders: ["Retry-After"],
        maxAge: 600
    });
}

function clientAddress(c: Parameters<MiddlewareHandler>[0]): string | undefined {
    try {
        return getConnInfo(c).remote.address;
    } catch {
        return undefined;
    }
}
