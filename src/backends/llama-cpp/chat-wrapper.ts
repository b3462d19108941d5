import {createRequire} from "node:module";
import path from "node:path";
import {pathToFileURL} from "node:url";
import {Worker} from "node:worker_threads";
import {chatWrappers, resolveChatWrapper, type ChatWrapper, type LlamaModel} from "node-llama-cpp";

type ChatWrapperType = keyof typeof chatWrappers;

/**
 * Telling which chat format a GGUF's Jinja template is (node-llama-cpp renders it against every
 * format it knows) takes ~0.6–0.8 s of synchronous JS for a model with a template: on the event
 * loop that would stall every other stream while a second model loads. So, while other models
 * are loaded (`othersLoaded`), the format is found in a worker thread and only built (≤ 15 ms)
 * here. The first model is resolved on this thread: no stream can be waiting yet, and a worker
 * (its own V8 heap and node-llama-cpp's modules) beside the freshly loaded weights raised the
 * process's peak RSS by ~50 MiB (1B Q4_0 model, measured).
 */
export async function resolveModelChatWrapper(model: LlamaModel, file: string, {othersLoaded}: {othersLoaded: boolean}): Promise<ChatWrapper> {
    if (!othersLoaded) return resolveChatWrapper(model);
    const type = await detectChatWrapperType(file, model.tokens.bosString ?? null, model.fileInfo.metadata?.tokenizer?.chat_template != null)
        .catch(() => undefined);
    const options = {bosString: model.tokens.bosString, filename: model.filename, fileInfo: model.fileInfo, tokenizer: model.tokenizer};
    return (type == null ? undefined : resolveChatWrapper({...options, type})) ?? resolveChatWrapper(model);
}

const WORKER_SOURCE = `
const {parentPort, workerData} = require("node:worker_threads");
(async () => {
    try {
        const llamaCpp = await import(workerData.moduleUrl);
        const fileInfo = await llamaCpp.readGgufFileInfo(workerData.path, {readTensorInfo: false, logWarnings: false});
        const wrapper = llamaCpp.resolveChatWrapper({fileInfo, filename: workerData.filename, bosString: workerData.bosString, warningLogs: false});
        parentPort.postMessage({type: Object.entries(llamaCpp.chatWrappers).find(([, type]) => wrapper instanceof type)?.[0]});
    } catch (error) {
        parentPort.postMessage({error: String(error?.message ?? error)});
    }
})();
`;

/** The package's entry as a file URL (`import.meta.resolve` is missing under vitest's module runner). */
function nodeLlamaCppUrl(): string {
    return pathToFileURL(createRequire(import.meta.url).resolve("node-llama-cpp")).href;
}

async function detectChatWrapperType(file: string, bosString: string | null, hasTemplate: boolean): Promise<ChatWrapperType | undefined> {
    // Without a template the choice is made from the file name and architecture: fast either way.
    if (!hasTemplate || file === "") return undefined;
    const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: {moduleUrl: nodeLlamaCppUrl(), path: file, filename: path.basename(file), bosString}
    });
    try {
        const reply = await new Promise<{type?: string; error?: string}>((resolve, reject) => {
            worker.once("message", resolve);
            worker.once("error", reject);
            worker.once("exit", (code) => reject(new Error(`chat format worker exited with ${code}`)));
        });
        if (reply.error != null) throw new Error(reply.error);
        return reply.type != null && Object.hasOwn(chatWrappers, reply.type) ? reply.type as ChatWrapperType : undefined;
    } finally {
        await worker.terminate();
    }
}
