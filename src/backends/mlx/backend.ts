import {createHash} from "node:crypto";
import {readdir, readFile, stat} from "node:fs/promises";
import path from "node:path";
import type {
    Backend, BackendModel, BackendSequence, GeneratedToken, IncrementalDetokenizer, LoadModelOptions, ModelDescription,
    OutputConstraint, RenderedPrompt, SequenceGenerateOptions
} from "../backend.js";
import {InvalidRequestError} from "../../runtime/errors.js";
import type {ChatMessage, SamplingOptions} from "../../runtime/types.js";
import {loadMlxModule, type MlxLoaderOptions} from "./loader.js";
import type {MlxChatConfig, MlxChatMessage, MlxLmModule, MlxModel} from "./mlx-api.js";
import {estimateTokens, MlxPromptTable, MlxTextPieces} from "./text-tokens.js";

/**
 * Apple MLX through `@mlx-node/lm`, behind the same Backend interface as llama.cpp. The package
 * renders the chat template, tokenizes and decodes natively and streams text; this adapter maps
 * that onto the runtime's token stream (see text-tokens.ts), so streaming, stop strings,
 * cancellation and usage work unchanged. One sequence: the package decodes one stream at a time.
 */
export class MlxBackend implements Backend {
    readonly name = "mlx";

    private constructor(private readonly mlx: MlxLmModule) {}

    /** Fails with MlxUnavailableError anywhere but darwin-arm64, or without the package. */
    static async create(options: MlxLoaderOptions = {}) {
        return new MlxBackend(await loadMlxModule(options));
    }

    async loadModel(options: LoadModelOptions): Promise<BackendModel> {
        const info = await stat(options.path).catch(() => undefined);
        if (info?.isDirectory() !== true)
            throw new Error(`MLX models are folders (config.json + *.safetensors, e.g. from mlx-community on Hugging Face); ${options.path} is not one`);
        const model = await this.mlx.loadModel(options.path, options.draftPath == null ? undefined : {draftModelPath: options.draftPath});
        const limits = model.contextLimits?.();
        const contextSize = Math.min(options.contextSize ?? limits?.effectiveWindowTokens ?? 4096, limits?.effectiveWindowTokens ?? Infinity);
        const description: ModelDescription = {
            id: options.id,
            path: path.resolve(options.path),
            architecture: await readModelType(options.path),
            contextSize,
            trainContextSize: limits?.trainedWindowTokens ?? contextSize,
            parallel: 1,
            threads: 1,
            threadsReason: "MLX decodes on the GPU (Metal); CPU threads are not a setting",
            accelerator: "metal",
            fileSizeBytes: await weightsSize(options.path),
            chatTemplate: "the model's own (rendered by @mlx-node/lm)",
            kvCacheType: "f16",
            kvBytesPerToken: 0,
            canShiftContext: false,
            flashAttention: false,
            fingerprint: createHash("sha256").update(`mlx:${path.resolve(options.path)}:${contextSize}`).digest("hex").slice(0, 16),
            loadedAt: Math.floor(Date.now() / 1000),
            ...(options.draftPath == null ? {} : {draftModel: path.resolve(options.draftPath)})
        };
        return new MlxBackendModel(description, model);
    }

    async dispose() {}
}

export class MlxBackendModel implements BackendModel {
    readonly sequences: readonly BackendSequence[];
    private readonly prompts = new MlxPromptTable();
    private readonly pieces = new MlxTextPieces();

    constructor(readonly description: ModelDescription, private readonly model: MlxModel) {
        this.sequences = [new MlxSequence(0, model, this.prompts, this.pieces, description.contextSize)];
    }

    renderChat(messages: readonly ChatMessage[]): RenderedPrompt {
        return {tokens: this.prompts.render(messages.map(toMlxMessage)), stopStrings: []};
    }

    renderCompletion(): RenderedPrompt {
        throw new InvalidRequestError("The MLX backend serves chat only (/v1/chat/completions): @mlx-node/lm applies the model's chat template itself.", "prompt");
    }

    tokenize(text: string): number[] {
        return new Array<number>(estimateTokens(text)).fill(0);
    }

    createDetokenizer(): IncrementalDetokenizer {
        return {push: (token) => this.pieces.take(token), flush: () => ""};
    }

    prepareConstraint(): Promise<OutputConstraint> {
        return Promise.reject(new InvalidRequestError("response_format (JSON mode, JSON schema) is not supported by the MLX backend", "response_format"));
    }

    async dispose() {
        await this.model.resetCaches();
    }
}

class MlxSequence implements BackendSequence {
    readonly cachedTokens: readonly number[] = [];

    constructor(
        readonly index: number,
        private readonly model: MlxModel,
        private readonly prompts: MlxPromptTable,
        private readonly pieces: MlxTextPieces,
        private readonly contextSize: number
    ) {}

    async *generate(prompt: readonly number[], options: SequenceGenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
        const messages = this.prompts.take(prompt);
        if (messages == null) throw new Error("This prompt was not rendered by the MLX model (or was already generated)");
        const controller = new AbortController();
        const stream = this.model.chatStreamSessionStart(messages, chatConfig(options.sampling, this.contextSize), controller.signal);
        const handedOut: number[] = [];
        let first = true;
        try {
            for await (const event of stream) {
                if (event.done) return;
                if (event.isReasoning === true || event.text.length === 0) continue;
                const token = this.pieces.add(event.text);
                handedOut.push(token);
                yield first ? {token, reusedPromptTokens: 0} : {token};
                first = false;
            }
        } finally {
            // The consumer stopped (cancel, stop string, limit) or the stream ended: stop native decoding.
            controller.abort();
            await stream.return(undefined).catch(() => {});
            this.pieces.drop(handedOut);
        }
    }

    async truncate() {}

    saveState(): Promise<void> {
        return Promise.reject(new Error("The MLX backend cannot save KV state"));
    }

    loadState(): Promise<void> {
        return Promise.reject(new Error("The MLX backend cannot load KV state"));
    }
}

function toMlxMessage(message: ChatMessage): MlxChatMessage {
    const role = message.role === "developer" ? "system" : message.role;
    return {role, content: message.content};
}

function chatConfig(sampling: SamplingOptions, contextSize: number): MlxChatConfig {
    return {
        // The runtime stops at max_tokens itself; the package's own default cap must not come first.
        maxNewTokens: contextSize,
        temperature: sampling.temperature,
        topP: sampling.topP,
        topK: sampling.topK,
        minP: sampling.minP,
        repetitionPenalty: sampling.repeatPenalty,
        presencePenalty: sampling.presencePenalty
    };
}

async function readModelType(dir: string): Promise<string> {
    try {
        const config = JSON.parse(await readFile(path.join(dir, "config.json"), "utf8")) as {model_type?: unknown};
        return typeof config.model_type === "string" ? config.model_type : "unknown";
    } catch {
        return "unknown";
    }
}

async function weightsSize(dir: string): Promise<number> {
    let total = 0;
    for (const name of await readdir(dir).catch(() => [] as string[]))
        if (name.endsWith(".safetensors")) total += (await stat(path.join(dir, name))).size;
    return total;
}
