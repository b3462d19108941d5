import {mkdtemp, readdir, readFile, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {afterEach, describe, expect, it} from "vitest";
import {startTestServer, type TestServer, type TestServerOptions} from "./helpers/server.js";
import {isStories260K} from "./helpers/model.js";

interface Message {role: "system" | "user" | "assistant"; content: string}
interface ChatResult {text: string; promptTokens: number; cachedTokens: number}

const servers: TestServer[] = [];
afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop().catch(() => {});
});

async function start(options: TestServerOptions) {
    const server = await startTestServer(options);
    servers.push(server);
    return server;
}

async function chat(server: TestServer, messages: Message[], headers: Record<string, string> = {}): Promise<ChatResult> {
    const response = await fetch(`${server.url}/v1/chat/completions`, {
        method: "POST",
        headers: {"content-type": "application/json", ...headers},
        body: JSON.stringify({model: server.modelId, messages, max_tokens: 16, temperature: 0})
    });
    const body = await response.json() as {
        choices: {message: {content: string}}[];
        usage: {prompt_tokens: number; prompt_tokens_details: {cached_tokens: number}};
    };
    return {text: body.choices[0]!.message.content, promptTokens: body.usage.prompt_tokens, cachedTokens: body.usage.prompt_tokens_details.cached_tokens};
}

const system = (n: number): Message => ({role: "system", content: `You are storyteller number ${n}. ` + "Tell tales of the sea, the wind and the little fish. ".repeat(6)});

/** `conversations` conversations take `turns` turns each, round robin; returns every answer in order. */
async function interleave(server: TestServer, conversations: number, turns: number, check?: (turn: number, result: ChatResult, previousPrompt: number) => void) {
    const histories = Array.from({length: conversations}, (_, n) => [system(n)]);
    const previous = new Array<number>(conversations).fill(0);
    const answers: string[] = [];
    for (let turn = 0; turn < turns; turn++)
        for (let n = 0; n < conversations; n++) {
            const history = histories[n]!;
            history.push({role: "user", content: `Part ${turn}: what did fish ${n} see?`});
            const result = await chat(server, history);
            check?.(turn, result, previous[n]!);
            previous[n] = result.promptTokens;
            history.push({role: "assistant", content: result.text});
            answers.push(result.text);
        }
    return answers;
}

const tempDir = () => mkdtemp(path.join(os.tmpdir(), "edge-llm-kv-"));

describe("prefix reuse", () => {
    it("a repeated system prompt skips its prefill", async () => {
        const server = await start({parallel: 2, contextSize: 1024});
        const first = await chat(server, [system(1), {role: "user", content: "Hello"}]);
        const second = await chat(server, [system(1), {role: "user", content: "Tell me about whales"}]);
        expect(first.cachedTokens).toBe(0);
        expect(second.cachedTokens).toBeGreaterThan(80);
        expect(second.cachedTokens).toBeLessThan(second.promptTokens);
        const kv = server.runtime.health().kv!;
        expect(kv.prefixHits).toBe(1);
        expect(kv.reusedPromptTokens).toBe(second.cachedTokens);
        expect(kv.blocks.cached).toBeGreaterThan(0);

        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        expect(metrics).toMatch(/^edge_llm_kv_prefix_hits_total 1$/m);
        expect(metrics).toMatch(new RegExp(`^edge_llm_kv_reused_prompt_tokens_total ${second.cachedTokens}$`, "m"));
        expect(metrics).toMatch(new RegExp(`^edge_llm_kv_blocks\\{state="cached"\\} ${kv.blocks.cached}$`, "m"));
        expect(metrics).toMatch(/^edge_llm_slots_total 2$/m);
        expect(metrics).toMatch(/^edge_llm_process_resident_memory_bytes \d+/m);
    });
});

describe("many conversations on few sequences", () => {
    it("spill and restore keep every conversation's cache, with the same greedy text as never spilling", async () => {
        const reference = await interleave(await start({parallel: 6, contextSize: 1024}), 6, 3);

        const dir = await tempDir();
        const server = await start({parallel: 2, contextSize: 1024, kv: {blockSize: 16, spillDir: dir}});
        const answers = await interleave(server, 6, 3, (turn, result, previousPrompt) => {
            // From the second turn on, everything up to the previous answer comes from KV.
            if (turn > 0) expect(result.cachedTokens).toBeGreaterThanOrEqual(previousPrompt);
        });
        expect(answers).toEqual(reference);
        const kv = server.runtime.health().kv!;
        expect(kv.spills).toBeGreaterThanOrEqual(10);
        expect(kv.restores).toBeGreaterThanOrEqual(10);
        expect(kv.rejectedStates).toBe(0);
    });

    it("without a disk tier, interleaving evicts: the same turns miss", async () => {
        const server = await start({parallel: 2, contextSize: 1024, kv: {blockSize: 16}});
        let misses = 0;
        await interleave(server, 6, 2, (turn, result, previousPrompt) => {
            if (turn > 0 && result.cachedTokens < previousPrompt) misses++;
        });
        expect(misses).toBeGreaterThanOrEqual(4);
    });
});

describe("state files are checked before llama.cpp sees them", () => {
    it("a damaged state file is refused and the answer is computed afresh", async () => {
        const reference = await interleave(await start({parallel: 3, contextSize: 1024}), 3, 2);
        const dir = await tempDir();
        const server = await start({parallel: 1, contextSize: 1024, kv: {blockSize: 16, spillDir: dir}});
        const histories = [0, 1, 2].map((n) => [system(n), {role: "user" as const, content: `Part 0: what did fish ${n} see?`}]);
        const firstAnswers = [];
        for (const history of histories) firstAnswers.push((await chat(server, history)).text);

        const modelDir = path.join(dir, (await readdir(dir))[0]!);
        const states = (await readdir(modelDir)).filter((name) => name.endsWith(".state"));
        expect(states.length).toBeGreaterThanOrEqual(2);
        for (const name of states) {
            const file = path.join(modelDir, name);
            const bytes = await readFile(file);
            bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
            await writeFile(file, bytes);
        }
        const secondAnswers = [];
        for (const [n, history] of histories.entries()) {
            history.push({role: "assistant", content: firstAnswers[n]!}, {role: "user", content: `Part 1: what did fish ${n} see?`});
            secondAnswers.push((await chat(server, history)).text);
        }
        expect([...firstAnswers, ...secondAnswers]).toEqual([reference[0], reference[1], reference[2], reference[3], reference[4], reference[5]]);
        expect(server.runtime.health().kv!.rejectedStates).toBeGreaterThanOrEqual(2);
    });

    it("states of another model are discarded when the folder is opened", async () => {
        const dir = await tempDir();
        const first = await start({parallel: 1, contextSize: 1024, kv: {blockSize: 16, spillDir: dir, persistOnShutdown: true}});
        await chat(first, [system(1), {role: "user", content: "Hello"}]);
        await first.stop();
        servers.splice(servers.indexOf(first), 1);

        const modelDir = path.join(dir, (await readdir(dir))[0]!);
        const sidecar = (await readdir(modelDir)).find((name) => name.endsWith(".json"))!;
        const entry = JSON.parse(await readFile(path.join(modelDir, sidecar), "utf8"));
        await writeFile(path.join(modelDir, sidecar), JSON.stringify({...entry, model: "some-other-model"}));

        const events: string[] = [];
        const second = await start({parallel: 1, contextSize: 1024, kv: {blockSize: 16, spillDir: dir}, onEvent: (event) => events.push(event)});
        expect(events).toContain("spill-discarded");
        expect(second.runtime.health().kv!.spilledStates).toBe(0);
        expect(await readdir(modelDir)).toEqual([]);
    });
});

describe("sessions", () => {
    it("persisted on shutdown, a conversation continues warm after a restart", async () => {
        const dir = await tempDir();
        const options = {parallel: 1, contextSize: 1024, kv: {blockSize: 16, spillDir: dir, persistOnShutdown: true}};
        const history: Message[] = [system(3), {role: "user", content: "Part 0: what did the fish see?"}];
        const first = await start(options);
        const turn0 = await chat(first, history, {"x-session-id": "alice"});
        await first.stop();
        servers.splice(servers.indexOf(first), 1);

        const second = await start(options);
        history.push({role: "assistant", content: turn0.text}, {role: "user", content: "Part 1: and then?"});
        const turn1 = await chat(second, history, {"x-session-id": "alice"});
        expect(turn1.cachedTokens).toBeGreaterThanOrEqual(turn0.promptTokens);
        expect(second.runtime.health().kv!.restores).toBe(1);
    });

    it("a session's cached conversation is evicted after anonymous ones", async () => {
        const server = await start({parallel: 2, contextSize: 1024, kv: {blockSize: 16}});
        const pinned: Message[] = [system(1), {role: "user", content: "Part 0: fish?"}];
        const pinnedTurn = await chat(server, pinned, {"x-session-id": "bob"});
        await chat(server, [system(2), {role: "user", content: "Part 0: fish?"}]);
        // A third, unrelated conversation needs a sequence: the anonymous one goes, although it is newer.
        await chat(server, [system(3), {role: "user", content: "Part 0: fish?"}]);
        pinned.push({role: "assistant", content: pinnedTurn.text}, {role: "user", content: "Part 1: and then?"});
        const next = await chat(server, pinned, {"x-session-id": "bob"});
        expect(next.cachedTokens).toBeGreaterThanOrEqual(pinnedTurn.promptTokens);
    });
});

describe("memory budget", () => {
    it.skipIf(!isStories260K)("sizes each sequence's context from a KV budget in tokens or MiB", async () => {
        const {LlamaCppBackend} = await import("../src/backends/llama-cpp/backend.js");
        const {Runtime} = await import("../src/runtime/runtime.js");
        const {testModelPath} = await import("./helpers/model.js");
        const runtime = new Runtime(await LlamaCppBackend.create({gpu: false, logger: () => {}}));
        try {
            // stories260K: 5 layers × 4 KV heads × 8 values × (K + V) × 2 bytes = 640 bytes per token.
            const byMiB = await runtime.load({path: testModelPath, id: "m", parallel: 2, kvBudget: {mib: 1}});
            expect(byMiB.kvBytesPerToken).toBe(640);
            expect(byMiB.contextSize).toBe(768); // 1 MiB / 640 B = 1638 tokens, / 2 sequences, down to 256s
            expect(runtime.health().kv!.blocks.total).toBe(2 * 768 / 32);
        } finally {
            await runtime.dispose();
        }
        const second = new Runtime(await LlamaCppBackend.create({gpu: false, logger: () => {}}));
        try {
            expect((await second.load({path: testModelPath, id: "m", parallel: 4, kvBudget: {tokens: 2048}})).contextSize).toBe(512);
        } finally {
            await second.dispose();
        }
    });
});
