import type {Context, MiddlewareHandler} from "hono";
import {bodyLimit} from "hono/body-limit";

/**
 * Rejects request bodies over `maxSize` bytes. A body with a Content-Length (what the OpenAI
 * clients and `fetch` send) is judged by its header alone; a chunked one goes through Hono's
 * `bodyLimit`, which counts its bytes as they are read. Hono's middleware reads `request.body`
 * to find out whether there is one, and on @hono/node-server that turns the lightweight request
 * into a full web `Request` with a stream over the socket; skipping it keeps the adapter's direct
 * body read. On stories260K that took 0.55–0.65 ms off a short request's time to first token
 * (3.6–4.3 → 3.0–3.6 ms over SSE, 60 requests each, interleaved).
 */
export function limitBody(maxSize: number, onError: (c: Context) => Response | Promise<Response>): MiddlewareHandler {
    const counting = bodyLimit({maxSize, onError});
    return async (c, next) => {
        if (c.req.method === "GET" || c.req.method === "HEAD")
            return next();
        const length = c.req.header("content-length");
        if (length != null && c.req.header("transfer-encoding") == null) {
            const size = Number(length);
            if (!Number.isSafeInteger(size) || size < 0) return counting(c, next);
            if (size > maxSize) return onError(c);
            return next();
        }
        return counting(c, next);
    };
}
