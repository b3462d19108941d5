import readline from "node:readline";
import {InvalidArgumentError, type Command} from "commander";
import {DEFAULT_TEMPERATURE} from "../runtime/types.js";
import {loadSettings} from "../config/load.js";
import {createLogger} from "../logger.js";
import {resolveModel} from "../models/default-model.js";
import {ModelFileError} from "../models/gguf-check.js";
import type {ChatMessage} from "../runtime/types.js";
import {createPowerService, createRuntime, loadableBuildRecord, modelLoadOptions} from "./serve.js";
import {gpuSupported, relaunch, singlePoolReason} from "./single-pool.js";
import type {EngineLimits} from "../runtime/runtime.js";

/**
 * `edge-llm chat`: a REPL over either the in-process engine or a running server. Both stream
 * text through one `ChatEngine`; the loop does not know which one it talks to.
 *
 * Keys: Ctrl-C while an answer streams stops that answer (the partial text stays in the
 * history); Ctrl-C on a non-empty line clears it; Ctrl-C twice on an empty line, Ctrl-D or
 * `/exit` quits. With stdin not a terminal, each line is a user turn, answers go to stdout
 * (notices to stderr), the program ends after the last answer at EOF, and SIGINT outside an
 * answer exits with 130.
 */

export interface ChatEngine {
    /** Shown in the banner, e.g. the model name. */
    readonly label: string;
    stream(messages: readonly ChatMessage[], signal: AbortSignal): AsyncIterable<string>;
    /** The device's power level, when the engine knows it. */
    power?(): Promise<{level: string; reason: string; limits: EngineLimits} | undefined>;
    close(): Promise<void>;
}

interface SamplingFlags {
    temperature: number;
    maxTokens?: number;
}

interface ChatFlags extends Partial<SamplingFlags> {
    url?: string;
    modelId?: string;
    system?: string;
    model?: string;
    threads?: string;
    ctxSize?: string;
    contextOverflow?: string;
    kvCacheType?: string;
    modelsDir?: string;
    gpu?: string;
    config?: string;
    logLevel?: string;
}

export function registerChat(program: Command) {
    program.command("chat")
        .description("chat with a model in the terminal (in-process, or with --url against a running server)")
        .option("-m, --model <path>", "GGUF model file (same resolution as serve)")
        .option("--url <url>", "talk to a running edge-llm (or any OpenAI-compatible) server instead, e.g. http://127.0.0.1:8080")
        .option("--model-id <id>", "with --url: the model to ask for (default: the first of GET /v1/models)")
        .option("-s, --system <text>", "system prompt")
        .option("--temperature <t>", `sampling temperature, 0 = greedy (default ${DEFAULT_TEMPERATURE})`, parseNumberIn(0, 2))
        .option("-n, --max-tokens <n>", "longest answer in tokens (default: until the model stops or the context is full)", parseNumberIn(1, Number.MAX_SAFE_INTEGER, true))
        .option("-t, --threads <n>", "CPU threads for decoding")
        .option("-c, --ctx-size <tokens>", "context tokens (the whole conversation must fit, unless --context-overflow says otherwise)")
        .option("--context-overflow <policy>", "conversation longer than the context: error, truncate or slide (default error)")
        .option("--kv-cache-type <type>", "KV cache element type: f16, q8_0 or q4_0 (default f16)")
        .option("--models-dir <dir>", "folder of models (default ./models)")
        .option("--gpu <mode>", "auto or cpu")
        .option("--config <file>", "config file (default ./hono.config.ts)")
        .option("--log-level <level>", "trace, debug, info, warn, error or silent")
        .action(async (flags: ChatFlags) => {
            const sampling = {temperature: flags.temperature ?? DEFAULT_TEMPERATURE, maxTokens: flags.maxTokens};
            const engine = flags.url != null
                ? await connectToServer(flags.url, flags.modelId, sampling)
                : await startInProcess(flags, sampling);
            let code;
            try {
                code = await runChatLoop(engine, flags.system);
            } finally {
                await engine.close();
            }
            await new Promise<void>((resolve) => process.stdout.write("", () => resolve()));
            process.exit(code);
        });
}

function parseNumberIn(min: number, max: number, integer = false) {
    return (value: string) => {
        const number = Number(value);
        if (value.trim() === "" || !Number.isFinite(number) || number < min || number > max || (integer && !Number.isInteger(number)))
            throw new InvalidArgumentError(`expected ${integer ? "an integer" : "a number"} from ${min}${max === Number.MAX_SAFE_INTEGER ? " up" : ` to ${max}`}`);
        return number;
    };
}

/** Runs the REPL until /exit, EOF or a double Ctrl-C; resolves to the exit code. */
export async function runChatLoop(engine: ChatEngine, system?: string): Promise<number> {
    const interactive = process.stdin.isTTY === true;
    const rl = readline.createInterface({input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive, prompt: "> "});
    const notice = (text: string) => process.stderr.write(`${text}\n`);
    const history: ChatMessage[] = [];
    let answering: AbortController | undefined;
    let warnedAtEmptyPrompt = false;
    let exitCode: number | undefined;

    const onInterrupt = () => {
        if (answering != null) {
            answering.abort();
            return;
        }
        if (interactive && rl.line.length > 0) {
            rl.write(null, {ctrl: true, name: "e"});
            rl.write(null, {ctrl: true, name: "u"});
            warnedAtEmptyPrompt = false;
            process.stdout.write("^C\n");
            rl.prompt();
            return;
        }
        if (interactive && !warnedAtEmptyPrompt) {
            warnedAtEmptyPrompt = true;
            process.stdout.write("\n(To exit, press Ctrl+C again, Ctrl+D or type /exit)\n");
            rl.prompt();
            return;
        }
        exitCode = interactive ? 0 : 130;
        rl.close();
    };
    rl.on("SIGINT", onInterrupt);
    process.on("SIGINT", onInterrupt);

    if (interactive) {
        notice(`edge-llm chat — ${engine.label}. Ctrl-C stops an answer; /reset clears the conversation; /exit or Ctrl-D quits.`);
        rl.prompt();
    }
    let failed = false;
    try {
        for await (const raw of rl) {
            if (exitCode != null) break;
            warnedAtEmptyPrompt = false;
            const line = raw.trim();
            if (line === "/exit" || line === "/quit") break;
            if (line === "/reset") {
                history.length = 0;
                notice("(conversation cleared)");
            } else if (line.length > 0) {
                const controller = new AbortController();
                answering = controller;
                failed = !(await answer(engine, system, history, line, controller.signal)) || failed;
                answering = undefined;
            }
            if (interactive) rl.prompt();
        }
    } finally {
        process.off("SIGINT", onInterrupt);
        rl.close();
    }
    return exitCode ?? (failed && !interactive ? 1 : 0);
}

/** One turn: streams the answer to stdout and records it. Resolves false if it failed. */
async function answer(engine: ChatEngine, system: string | undefined, history: ChatMessage[], line: string, signal: AbortSignal) {
    const power = await engine.power?.().catch(() => undefined);
    if (power != null && power.level !== "nominal") process.stderr.write(`${powerNotice(power)}\n`);
    history.push({role: "user", content: line});
    const messages: ChatMessage[] = system == null ? history : [{role: "system", content: system}, ...history];
    let text = "";
    let ok = true;
    try {
        for await (const piece of engine.stream(messages, signal)) {
            text += piece;
            process.stdout.write(piece);
        }
    } catch (error) {
        if (!signal.aborted) {
            ok = false;
            if (text.length > 0) process.stdout.write("\n");
            process.stderr.write(`error: ${(error as Error).message}\n`);
        }
    }
    if (ok) process.stdout.write("\n");
    if (signal.aborted) process.stderr.write("(answer stopped)\n");
    // What the user saw stays in the conversation; a turn that produced nothing is dropped.
    if (text.length > 0) history.push({role: "assistant", content: text});
    else history.pop();
    return ok;
}

async function startInProcess(flags: ChatFlags, sampling: SamplingFlags): Promise<ChatEngine> {
    const settings = await loadSettings({
        configFile: flags.config,
        flags: {
            model: flags.model, threads: flags.threads, ctxSize: flags.ctxSize, modelsDir: flags.modelsDir,
            gpu: flags.gpu, logLevel: flags.logLevel, parallel: 1,
            contextOverflow: flags.contextOverflow, kvCacheType: flags.kvCacheType
        }
    });
    const logger = createLogger(settings.logLevel);
    const singlePool = await singlePoolReason(settings, await loadableBuildRecord(settings), gpuSupported);
    if (singlePool != null) {
        // As serve does (single-pool.ts), before the model loads; the child is the chat.
        logger.debug(`relaunching with UV_THREADPOOL_SIZE=1: ${singlePool}`);
        process.exit(await relaunch({UV_THREADPOOL_SIZE: "1"}, {foreground: true}));
    }
    const model = await resolveModel({
        model: settings.model,
        modelsDir: settings.modelsDir,
        downloadTimeoutSeconds: settings.downloadTimeoutSeconds,
        command: "chat"
    });
    const runtime = await createRuntime(settings, logger, "truncate");
    const powerService = createPowerService(settings, runtime, logger);
    let description;
    try {
        description = await runtime.load(modelLoadOptions(settings, model.path));
    } catch (error) {
        await runtime.dispose().catch(() => {});
        if (error instanceof ModelFileError) throw error;
        throw new ModelFileError(`Cannot load model ${model.path}: ${(error as Error).message}`);
    }
    powerService?.apply();
    return {
        label: `${description.id} (ctx ${description.contextSize}, ${description.threads} thread${description.threads === 1 ? "" : "s"}, ${description.accelerator})`,
        async *stream(messages, signal) {
            const generation = await runtime.generate({
                input: {kind: "chat", messages: [...messages]},
                sampling: {temperature: sampling.temperature},
                maxTokens: sampling.maxTokens,
                stop: []
            }, {signal});
            for await (const event of generation)
                if (event.type === "delta" && event.text.length > 0) yield event.text;
        },
        power: async () => powerService?.status(),
        close: async () => {
            powerService?.stop();
            await runtime.dispose();
        }
    };
}

async function connectToServer(url: string, modelId: string | undefined, sampling: SamplingFlags): Promise<ChatEngine> {
    const base = url.replace(/\/+$/, "").replace(/\/v1$/, "");
    let model = modelId;
    if (model == null) {
        const response = await request(`${base}/v1/models`);
        const list = await response.json() as {data?: {id?: string}[]};
        model = list.data?.[0]?.id;
        if (model == null) throw new Error(`${base} serves no models (GET /v1/models is empty)`);
    }
    const chosen = model;
    return {
        label: `${chosen} at ${base}`,
        async *stream(messages, signal) {
            let response;
            try {
                response = await request(`${base}/v1/chat/completions`, {
                    method: "POST",
                    headers: {"content-type": "application/json"},
                    body: JSON.stringify({model: chosen, messages, stream: true, temperature: sampling.temperature, max_tokens: sampling.maxTokens}),
                    signal
                });
            } catch (error) {
                if (signal.aborted) return;
                throw error;
            }
            for await (const data of sseData(response.body!, signal)) {
                if (data === "[DONE]") return;
                const chunk = JSON.parse(data) as {error?: {message?: string}; choices?: {delta?: {content?: string | null}}[]};
                if (chunk.error != null) throw new Error(chunk.error.message ?? "the server reported an error");
                const text = chunk.choices?.[0]?.delta?.content;
                if (text != null && text.length > 0) yield text;
            }
        },
        power: async () => {
            const health = await (await fetch(`${base}/health`, {signal: AbortSignal.timeout(2000)})).json() as {power?: {level: string; reason: string; limits: EngineLimits}};
            return health.power;
        },
        close: async () => {}
    };
}

/** fetch with errors a user can act on: an unreachable server or the API's own error message. */
async function request(url: string, init?: RequestInit): Promise<Response> {
    let response;
    try {
        response = await fetch(url, init);
    } catch (error) {
        if (init?.signal?.aborted) throw error;
        const cause = (error as {cause?: {message?: string}}).cause?.message ?? (error as Error).message;
        throw new Error(`cannot reach ${new URL(url).origin}: ${cause}. Is \`edge-llm serve\` running there?`);
    }
    if (!response.ok) {
        const body = await response.text();
        let message = body;
        try {
            message = (JSON.parse(body) as {error?: {message?: string}}).error?.message ?? body;
        } catch {
            // not JSON: show the text as it came
        }
        throw new Error(`${init?.method ?? "GET"} ${new URL(url).pathname} failed with ${response.status}: ${message}`);
    }
    return response;
}

/** The `data` payloads of a server-sent-events body, one per event. Ends quietly when `signal` aborts. */
async function* sseData(body: ReadableStream<Uint8Array>, signal: AbortSignal): AsyncGenerator<string> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
        for (;;) {
            let chunk;
            try {
                chunk = await reader.read();
            } catch (error) {
                if (signal.aborted) return;
                throw error;
            }
            if (chunk.done) return;
            buffer = (buffer + decoder.decode(chunk.value, {stream: true})).replace(/\r\n/g, "\n");
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
                const event = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                const data = event.split("\n")
                    .filter((field) => field.startsWith("data:"))
                    .map((field) => field.slice(5).replace(/^ /, ""));
                if (data.length > 0) yield data.join("\n");
            }
        }
    } finally {
        reader.cancel().catch(() => {});
    }
}

/** e.g. "[power: serious — temperature 83.0 °C ≥ 80 (serious); answers paced to 8 tok/s, 1 at a time]" */
function powerNotice({level, reason, limits}: {level: string; reason: string; limits: EngineLimits}) {
    const effects = [
        limits.refuse != null ? "new answers refused for now" : undefined,
        limits.tokensPerSecond != null ? `answers paced to ${limits.tokensPerSecond} tok/s` : undefined,
        limits.maxTokens != null ? `at most ${limits.maxTokens} tokens` : undefined
    ].filter((effect) => effect != null);
    return `[power: ${level} — ${reason}${effects.length > 0 ? `; ${effects.join(", ")}` : ""}]`;
}
