import {Hono} from "hono";
import type {ModelHost, ModelListing} from "../../runtime/model-pool.js";
import {ApiError} from "./errors.js";
import {respondWithGeneration} from "./generate-route.js";
import {chatCompletionBody, chatToGenerationRequest, completionBody, completionToGenerationRequest} from "./schemas.js";
import {readJsonBody} from "../body.js";
import {planTools} from "./tools.js";
import {embeddingInputs, embeddingsBody, embeddingsResponse} from "./embeddings.js";
import type {GenerationRequest} from "../../runtime/types.js";

/** `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`. */
export function openAIRoutes(runtime: ModelHost) {
    const app = new Hono();

    app.post("/chat/completions", async (c) => {
        const body = chatCompletionBody.parse(await readJsonBody(c));
        const tools = planTools(body.tools, body.tool_choice, body.parallel_tool_calls);
        return respondWithGeneration(c, runtime, {
            kind: "chat",
            request: withSessionHeader(chatToGenerationRequest(body, tools), c.req.header("x-session-id")),
            stream: body.stream === true,
            includeUsage: body.stream_options?.include_usage === true,
            tools
        });
    });

    app.post("/completions", async (c) => {
        const body = completionBody.parse(await readJsonBody(c));
        const request = withSessionHeader(completionToGenerationRequest(body), c.req.header("x-session-id"));
        return respondWithGeneration(c, runtime, {
            kind: "completion",
            request,
            stream: body.stream === true,
            includeUsage: body.stream_options?.include_usage === true,
            echo: body.echo === true && request.input.kind === "completion" ? request.input.prompt : undefined
        });
    });

    app.post("/embeddings", async (c) => {
        const body = embeddingsBody.parse(await readJsonBody(c));
        const signal = c.req.raw.signal;
        const {model, vectors, tokens} = await runtime.use(body.model, (engine, selected) =>
            engine.embed(embeddingInputs(body.input), {modelId: selected.id, signal}), signal);
        return c.json(embeddingsResponse(body, model, vectors, tokens));
    });

    app.get("/models", async (c) => c.json({object: "list", data: (await runtime.listModels()).map(toModelObject)}));

    app.get("/models/:id{.+}", async (c) => {
        const id = c.req.param("id");
        const model = (await runtime.listModels()).find((entry) => entry.id === id || entry.aliases.includes(id));
        if (model == null)
            throw new ApiError(404, `The model '${id}' does not exist`, "invalid_request_error", "model", "model_not_found");
        return c.json(toModelObject(model));
    });

    return app;
}

/** The body's `session` wins over the X-Session-Id header. */
function withSessionHeader(request: GenerationRequest, header: string | undefined): GenerationRequest {
    if (request.session != null || header == null || header.length === 0) return request;
    if (header.length > 256)
        throw new ApiError(400, "X-Session-Id is longer than 256 characters.", "invalid_request_error", "X-Session-Id", "invalid_value");
    return {...request, session: header};
}

/** OpenAI's model object; `meta` (ignored by OpenAI clients) says whether it is loaded and, if so, how. */
function toModelObject(listing: ModelListing) {
    const model = listing.description;
    return {
        id: listing.id,
        object: "model",
        created: listing.created,
        owned_by: "edge-llm",
        meta: {
            loaded: listing.state === "loaded",
            state: listing.state,
            default: listing.isDefault,
            aliases: listing.aliases,
            size_bytes: listing.sizeBytes,
            ...(listing.error == null ? {} : {error: listing.error}),
            ...(model == null ? {} : {
                architecture: model.architecture,
                context_length: model.contextSize,
                train_context_length: model.trainContextSize,
                parallel: model.parallel,
                chat_template: model.chatTemplate
            })
        }
    };
}
