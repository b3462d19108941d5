import {z} from "zod";
import {ApiError} from "./errors.js";

/** `POST /v1/embeddings`: the body, and the response built from the model's vectors. */

/** Most inputs in one request (OpenAI's limit). */
export const MAX_EMBEDDING_INPUTS = 2048;

const tokenIds = z.array(z.number().int().min(0)).min(1);

export const embeddingsBody = z.object({
    model: z.string().min(1),
    input: z.union([
        z.string().min(1, {message: "the input is empty"}),
        z.array(z.string().min(1, {message: "the input is empty"})).min(1).max(MAX_EMBEDDING_INPUTS),
        tokenIds,
        z.array(tokenIds).min(1).max(MAX_EMBEDDING_INPUTS)
    ]),
    encoding_format: z.enum(["float", "base64"]).nullish(),
    /** Fewer dimensions than the model's: the vector is cut and normalised again. */
    dimensions: z.number().int().min(1).nullish(),
    user: z.string().optional()
});
export type EmbeddingsBody = z.infer<typeof embeddingsBody>;

/** The inputs as a list: one string, strings, one token list, or token lists. */
export function embeddingInputs(input: EmbeddingsBody["input"]): (string | number[])[] {
    if (typeof input === "string") return [input];
    if (input.length > 0 && typeof input[0] === "number") return [input as number[]];
    return input as (string | number[])[];
}

/** OpenAI's list of embedding objects: unit-length vectors, floats or little-endian float32 in base64. */
export function embeddingsResponse(body: EmbeddingsBody, model: string, vectors: number[][], tokens: number) {
    const dimensions = body.dimensions ?? undefined;
    const size = vectors[0]?.length ?? 0;
    if (dimensions != null && dimensions > size)
        throw new ApiError(400, `dimensions is ${dimensions}, but this model's embeddings have ${size}.`, "invalid_request_error", "dimensions", "invalid_value");
    return {
        object: "list",
        data: vectors.map((vector, index) => {
            const unit = normalize(dimensions == null ? vector : vector.slice(0, dimensions));
            return {object: "embedding", index, embedding: body.encoding_format === "base64" ? toBase64(unit) : unit};
        }),
        model,
        usage: {prompt_tokens: tokens, total_tokens: tokens}
    };
}

function normalize(vector: number[]): number[] {
    const length = Math.hypot(...vector);
    return length > 0 ? vector.map((value) => value / length) : vector;
}

function toBase64(vector: number[]): string {
    const bytes = Buffer.alloc(vector.length * 4);
    vector.forEach((value, index) => bytes.writeFloatLE(value, index * 4));
    return bytes.toString("base64");
}
