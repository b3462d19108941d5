/**
 * Reproduces an open issue (issue 5): with the noisy deep target and stories260K as its draft,
 * greedy speculative output sometimes differs from plain greedy output, depending on run order
 * and timing (the acceptance tracker's phases are timing-driven). Plain output is deterministic;
 * chunked verification and erased drafts were checked and give the same tokens.
 *
 *   ORDER=spec,plain,spec,spec npx tsx scripts/diagnostics/speculative-identity.ts
 */
import os from "node:os";
import path from "node:path";
import {LlamaCppBackend} from "../../src/backends/llama-cpp/backend.js";
import {Runtime} from "../../src/runtime/runtime.js";
import type {GenerationRequest} from "../../src/runtime/types.js";
import {writeDeepTargetFixtures} from "../../scripts/fixtures/deep-target.js";

const fixtures = await writeDeepTargetFixtures({source: "../shared/models/stories260K.gguf", outDir: path.join(os.tmpdir(), "edge-llm-noisy-check"), ffnLength: 16384} as never);
const runtime = new Runtime(await LlamaCppBackend.create({gpu: false, logger: () => {}}));
await runtime.load({path: fixtures.noisy, id: "noisy", parallel: 1, contextSize: 1024, threads: 1, draftPath: "../shared/models/stories260K.gguf"});
const generate = async (speculative: GenerationRequest["speculative"]) => {
    const stream = await runtime.generate({input: {kind: "completion", prompt: "Once upon a time"}, sampling: {temperature: 0}, maxTokens: 256, stop: [], speculative});
    let text = "";
    for await (const event of stream) {
        if (event.type === "delta") text += event.text;
        else return {text, finish: event.finishReason, tokens: event.usage.completionTokens};
    }
    throw new Error("no result");
};
const diff = (a: string, b: string) => { let i = 0; while (i < a.length && a[i] === b[i]) i++; return i === a.length && i === b.length ? -1 : i; };
const texts: {kind: string; text: string; finish: string; tokens: number}[] = [];
const order = (process.env.ORDER ?? "plain,spec,plain,spec,spec,spec").split(",");
for (const kind of order) texts.push({kind, ...await generate(kind === "plain" ? false : "draft")});
const ref = texts[0]!;
for (const entry of texts) {
    const at = diff(ref.text, entry.text);
    console.log(entry.kind, entry.finish, entry.tokens, at === -1 ? "same as run 0 plain" : `differs at char ${at}: ${JSON.stringify(ref.text.slice(Math.max(0, at - 20), at + 20))} vs ${JSON.stringify(entry.text.slice(Math.max(0, at - 20), at + 20))}`);
}
await runtime.dispose();
process.exit(0);
