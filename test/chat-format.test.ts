import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {LlamaCppBackend} from "../src/backends/llama-cpp/backend.js";
import {writeSyntheticModel} from "../scripts/fixtures/synthetic-model.js";

/**
 * A GGUF's chat template is matched to a chat format on the event loop for the first model and in
 * a worker thread while other models are loaded (src/backends/llama-cpp/chat-wrapper.ts): both
 * must find the same format.
 */
describe("chat format of a model with a Jinja template", () => {
    let dir: string;
    let file: string;

    beforeAll(async () => {
        dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-chat-format-"));
        file = (await writeSyntheticModel({shape: "tiny", target: path.join(dir, "tiny-chatml.gguf")})).path;
    });
    afterAll(async () => {
        await rm(dir, {recursive: true, force: true});
    });

    it("is the same whether found on the event loop (first model) or in a worker (others loaded)", async () => {
        const backend = await LlamaCppBackend.create({gpu: false, logger: () => {}});
        const first = await backend.loadModel({path: file, id: "first", parallel: 1, contextSize: 256, threads: 1});
        try {
            const second = await backend.loadModel({path: file, id: "second", parallel: 1, contextSize: 256, threads: 1});
            try {
                expect(first.description.chatTemplate).toBe("ChatML");
                expect(second.description.chatTemplate).toBe(first.description.chatTemplate);
            } finally {
                await second.dispose();
            }
            // With the second gone, a third load counts the first as still loaded.
            const third = await backend.loadModel({path: file, id: "third", parallel: 1, contextSize: 256, threads: 1});
            expect(third.description.chatTemplate).toBe("ChatML");
            await third.dispose();
        } finally {
            await first.dispose();
        }
    }, 60_000);
});
