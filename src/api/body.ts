import type {Context} from "hono";
import {ApiError} from "./openai/errors.js";

/** Parses a JSON request body; malformed JSON is a 400 in OpenAI's error format. */
export async function readJsonBody(c: Context): Promise<unknown> {
    const text = await c.req.text();
    if (text.trim().length === 0)
        throw new ApiError(400, "The request body is empty; send a JSON object.", "invalid_request_error", null, "invalid_json");
    try {
        return JSON.parse(text);
    } catch (error) {
        throw new ApiError(400, `The request body is not valid JSON: ${(error as Error).message}`, "invalid_request_error", null, "invalid_json");
    }
}
