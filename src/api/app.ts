import {Hono} from "hono";
import type {Runtime} from "../runtime/runtime.js";
import {singleRuntimeHost, type ModelHost} from "../runtime/model-pool.js";
import {ApiError, toOpenAIError} from "./openai/errors.js";
import {limitBody} from "./body-limit.js";
import {openAIRoutes} from "./openai/routes.js";
import {createMetrics} from "./metrics.js";
import {adminRoutes} from "./admin.js";
import {utilityRoutes} from "./utility-routes.js";
import type {PowerView} from "../power/status.js";
import type {AccessControl} from "./security/access.js";
import {httpAccess, httpCors} from "./security/middleware.js";

export interface AppOptions {
    /** One loaded runtime (tests, benchmarks) … */
    runtime?: Runtime;
    /** … or the model pool: every request's `model` picks (and loads) one. */
    models?: ModelHost;
    maxBodyBytes: number;
    power?: PowerView;
    adminToken?: string;
    onError?: (error: unknown) => void;
    /** API keys, rate limit and CORS origins; unset: open, unlimited, no CORS. */
    access?: AccessControl;
}

/** The HTTP API: OpenAI-compatible routes under /v1, /health, /metrics and /admin. */
export function createApp({runtime, models = singleRuntimeHost(runtime!), maxBodyBytes, power, adminToken, onError, access}: AppOptions) {
    const app = new Hono();

    // Before the body limit: a client without a key is refused before its body is read.
    const corsHandler = access == null ? undefined : httpCors(access);
    if (corsHandler != null) app.use("*", corsHandler);
    // /health stays open (load balancers, supervisors); /admin has its own token.
    if (access != null) app.use("*", httpAccess(access, {openPaths: ["/health"], ownAuthPrefixes: ["/admin"]}));

    app.use("*", limitBody(maxBodyBytes, () => {
        throw new ApiError(413, `The request body is larger than the limit of ${maxBodyBytes} bytes.`, "invalid_request_error", null, "request_too_large");
    }));

    app.get("/health", (c) => {
        const health = models.health();
        return c.json({...health, power: power?.status()}, health.status === "ready" ? 200 : 503);
    });

    const metrics = createMetrics(models, power);
    app.route("/admin", adminRoutes({power, adminToken}));
    app.get("/metrics", async (c) => c.body(await metrics.render(), 200, {"Content-Type": metrics.contentType}));

    app.route("/v1", openAIRoutes(models));
    app.route("/", utilityRoutes(models));

    app.notFound((c) => {
        const {status, error} = toOpenAIError(new ApiError(404, `Unknown endpoint: ${c.req.method} ${c.req.path}`, "invalid_request_error", null, "unknown_url"));
        return c.json({error}, status as 404);
    });

    app.onError((error, c) => {
        const mapped = toOpenAIError(error);
        if (mapped.status >= 500 && mapped.status !== 503)
            onError?.(error);
        if (mapped.retryAfter != null)
            c.header("Retry-After", String(mapped.retryAfter));
        return c.json({error: mapped.error}, mapped.status as 400);
    });

    return app;
}
