import {Hono} from "hono";
import {z} from "zod";
import type {ModelHost} from "../runtime/model-pool.js";
import {DEFAULT_TEMPERATURE} from "../runtime/types.js";
import {readJsonBody} from "./body.js";
import {ApiError} from "./openai/errors.js";
import {openApiDocument} from "./openapi.js";

/** Most token ids one /detokenize request may send. */
const MAX_DETOKENIZE_TOKENS = 1 << 20;

export const tokenizeBody = z.object({
    content: z.string(),
    /** Parse special-token text (e.g. `<s>`) and add BOS where the model expects one. */
    add_special: z.boolean().nullish(),
    /** Return `{id, piece}` per token instead of bare ids. */
    with_pieces: z.boolean().nullish(),
    model: z.string().min(1).nullish()
});

export const detokenizeBody = z.object({
    tokens: z.array(z.number().int()).max(MAX_DETOKENIZE_TOKENS),
    model: z.string().min(1).nullish()
});

/** llama-server's utility endpoints: `/tokenize`, `/detokenize`, `/props`, and `/openapi.json`. */
export function utilityRoutes(models: ModelHost) {
    const app = new Hono();

    app.post("/tokenize", async (c) => {
        const body = tokenizeBody.parse(await readJsonBody(c));
        const {tokens, piece} = await models.use(body.model ?? undefined, (runtime, model) =>
            runtime.tokenize(body.content, {special: body.add_special === true, modelId: model.id}), c.req.raw.signal);
        if (body.with_pieces !== true) return c.json({tokens});
        return c.json({tokens: tokens.map((id) => ({id, piece: pieceOf(piece(id))}))});
    });

    app.post("/detokenize", async (c) => {
        const body = detokenizeBody.parse(await readJsonBody(c));
        return c.json({content: await models.use(body.model ?? undefined, (runtime, model) => runtime.detokenize(body.tokens, model.id), c.req.raw.signal)});
    });

    app.get("/props", (c) => models.use(c.req.query("model"), (runtime) => {
        const health = runtime.health();
        const model = health.model;
        if (model == null)
            throw new ApiError(503, health.status === "failed" ? `The model failed to load: ${health.error}` : "The model is still loading.", "server_error", null, "not_ready");
        return c.json({
            model_alias: model.id,
            model_path: model.path,
            total_slots: model.parallel,
            chat_template: model.chatTemplate,
            default_generation_settings: {n_ctx: model.contextSize, params: {temperature: DEFAULT_TEMPERATURE}},
            modalities: {vision: false, audio: false},
            model: {
                architecture: model.architecture,
                context_length: model.contextSize,
                train_context_length: model.trainContextSize,
                size_bytes: model.fileSizeBytes,
                kv_cache_type: model.kvCacheType,
                kv_bytes_per_token: model.kvBytesPerToken,
                draft_model: model.draftModel ?? null
            },
            runtime: {
                backend: runtime.backend.name,
                accelerator: model.accelerator,
                threads: model.threads,
                threads_reason: model.threadsReason,
                flash_attention: model.flashAttention,
                decode_loop: model.decodeLoop == null ? null : {kind: model.decodeLoop.kind, reason: model.decodeLoop.reason},
                // The estimate checked against free memory before loading (weights; KV cache and compute buffers).
                memory_estimate: model.memory == null ? null : {model_bytes: model.memory.modelBytes, context_bytes: model.memory.contextBytes},
                slots: health.slots,
                limits: health.limits
            }
        });
    }, c.req.raw.signal));

    app.get("/openapi.json", (c) => c.json(openApiDocument()));

    return app;
}

/** llama-server's piece: the text, or the raw bytes when they are not whole UTF-8 characters. */
function pieceOf({text, bytes}: {text: string; bytes: Uint8Array}): string | number[] {
    return text.includes("\uFFFD") ? [...bytes] : text;
}
