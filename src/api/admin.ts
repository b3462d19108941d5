import {timingSafeEqual, createHash} from "node:crypto";
import {Hono} from "hono";
import {z} from "zod";
import type {PowerView} from "../power/status.js";
import {POWER_LEVELS} from "../power/types.js";
import {ApiError} from "./openai/errors.js";
import {readJsonBody} from "./body.js";

export const overrideBody = z.object({level: z.enum(POWER_LEVELS).nullable()});

/**
 * `/admin/power`: read the power state, or force a level (apps that know better than the
 * sensors, demos). Needs `Authorization: Bearer <adminToken>`; without a configured token the
 * routes answer 404, as if they did not exist.
 */
export function adminRoutes({power, adminToken}: {power?: PowerView; adminToken?: string}) {
    const app = new Hono();
    app.use("*", async (c, next) => {
        if (adminToken == null || adminToken.length === 0 || power == null)
            throw new ApiError(404, "Admin endpoints are disabled; set adminToken (EDGE_LLM_ADMIN_TOKEN) to enable them.", "invalid_request_error", null, "unknown_url");
        const given = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
        if (!sameSecret(given, adminToken))
            throw new ApiError(401, "Missing or wrong admin token (Authorization: Bearer …).", "authentication_error", null, "invalid_api_key");
        await next();
    });
    app.get("/power", (c) => c.json(power!.status()));
    app.post("/power", async (c) => {
        const {level} = overrideBody.parse(await readJsonBody(c));
        power!.setOverride(level);
        return c.json(power!.status());
    });
    return app;
}

/** Constant-time comparison that also hides the secret's length. */
function sameSecret(given: string, expected: string) {
    const digest = (value: string) => createHash("sha256").update(value).digest();
    return timingSafeEqual(digest(given), digest(expected));
}
