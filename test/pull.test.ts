import {createHash} from "node:crypto";
import {existsSync} from "node:fs";
import {mkdtemp, readdir, readFile, rm, writeFile} from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {afterAll, beforeAll, describe, expect, it} from "vitest";
import {DOWNLOADS_DIR, PullError, pullModel} from "../src/models/pull.js";
import {FileServer} from "./helpers/file-server.js";
import {isStories260K, repoRoot, testModelPath} from "./helpers/model.js";
import {runToEnd} from "./helpers/cli.js";

/**
 * `edge-llm pull` with node-llama-cpp's real downloader against a loopback HTTP server that
 * serves the test model (with Range support) and can cut a download mid-file.
 */

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

let tmp: string;
let server: FileServer;
let model: Buffer;
/** The test model followed by 12 MiB of filler: larger than the downloader's 5 MiB resume unit. */
let big: Buffer;

beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "edge-llm-pull-"));
    model = await readFile(testModelPath);
    const filler = Buffer.alloc(12 * 1024 * 1024);
    for (let index = 0; index < filler.length; index += 4) filler.writeUInt32LE(index * 2654435761 >>> 0, index);
    big = Buffer.concat([model, filler]);
    server = await new FileServer({
        "/stories260K.gguf": model,
        "/big.gguf": big,
        "/someone/tiny-GGUF/resolve/main/stories260K.gguf": model
    }).start();
});

afterAll(async () => {
    await server?.stop();
    if (tmp != null) await rm(tmp, {recursive: true, force: true});
});

const ggufFiles = async (dir: string) => (await readdir(dir)).filter((name) => name.endsWith(".gguf"));

describe("pull", () => {
    it("downloads a URL into the models folder with progress and a verified sha256", async () => {
        const dir = await mkdtemp(path.join(tmp, "url-"));
        const progress: number[] = [];
        const pulled = await pullModel({
            source: `${server.url}/stories260K.gguf`, modelsDir: dir, timeoutSeconds: 10, sha256: sha256(model),
            progressBar: false, onProgress: ({downloadedBytes, totalBytes}) => {
                expect(totalBytes).toBe(model.length);
                progress.push(downloadedBytes);
            }
        });
        expect(pulled).toMatchObject({path: path.join(dir, "stories260K.gguf"), sizeBytes: model.length, sha256: sha256(model), verified: true, alreadyPresent: false});
        expect((await readFile(pulled.path)).equals(model)).toBe(true);
        expect(progress.at(-1)).toBe(model.length);
        expect(await ggufFiles(path.join(dir, DOWNLOADS_DIR))).toEqual([]);

        const again = await pullModel({source: `${server.url}/stories260K.gguf`, modelsDir: dir, timeoutSeconds: 10, progressBar: false});
        expect(again).toMatchObject({path: pulled.path, alreadyPresent: true});
    });

    it("resumes a download that was cut, asking only for the missing ranges", async () => {
        const dir = await mkdtemp(path.join(tmp, "resume-"));
        const source = `${server.url}/big.gguf`;
        server.requests.length = 0;
        server.cutAfter(6_000_000);
        const failure = await pullModel({source, modelsDir: dir, timeoutSeconds: 1, progressBar: false}).catch((error: unknown) => error);
        expect((failure as Error).message).toMatch(/stalled|no answer/);
        expect(await ggufFiles(dir)).toEqual([]);
        expect((await readdir(path.join(dir, DOWNLOADS_DIR))).some((name) => name.startsWith("big.gguf"))).toBe(true);

        const ranges = (requests: typeof server.requests) => requests.filter((request) => request.range != null).map((request) => {
            const [start, end] = /bytes=(\d+)-(\d+)/.exec(request.range!)!.slice(1).map(Number) as [number, number];
            return {start, end};
        });
        const firstAttempt = ranges(server.requests);
        server.restore();
        server.requests.length = 0;
        const pulled = await pullModel({source, modelsDir: dir, timeoutSeconds: 10, sha256: sha256(big), progressBar: false});
        expect(pulled.verified).toBe(true);
        expect((await readFile(pulled.path)).equals(big)).toBe(true);
        const second = ranges(server.requests);
        expect(second.length).toBeGreaterThan(0);
        // The downloader resumes in 5 MiB chunks: the 6 MB the first attempt got completed the
        // chunk its first ranged request started at, and no request of the second asks for it again.
        const chunk = {start: firstAttempt[0]!.start, end: firstAttempt[0]!.start + 5 * 1024 * 1024 - 1};
        expect(second.filter((range) => range.start <= chunk.start && range.end >= chunk.end)).toEqual([]);
    });

    it("refuses a file whose sha256 differs and does not leave it as a model", async () => {
        const dir = await mkdtemp(path.join(tmp, "checksum-"));
        const failure = await pullModel({source: `${server.url}/stories260K.gguf`, modelsDir: dir, timeoutSeconds: 10, sha256: "0".repeat(64), progressBar: false})
            .catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(PullError);
        expect((failure as Error).message).toContain(`expected sha256 ${"0".repeat(64)}, got ${sha256(model)}`);
        expect(await ggufFiles(dir)).toEqual([]);
        expect(await ggufFiles(path.join(dir, DOWNLOADS_DIR))).toEqual([]);
    });

    it("resolves hf: URIs against the Hugging Face endpoint (HF_ENDPOINT)", async () => {
        const dir = await mkdtemp(path.join(tmp, "hf-"));
        const previous = process.env.HF_ENDPOINT;
        process.env.HF_ENDPOINT = server.url;
        try {
            const pulled = await pullModel({source: "hf:someone/tiny-GGUF/stories260K.gguf", modelsDir: dir, timeoutSeconds: 10, progressBar: false});
            expect((await readFile(pulled.path)).equals(model)).toBe(true);
        } finally {
            if (previous == null) delete process.env.HF_ENDPOINT;
            else process.env.HF_ENDPOINT = previous;
        }
    });

    it("gives up within seconds when the host is unreachable or never answers", async () => {
        const dir = await mkdtemp(path.join(tmp, "offline-"));
        let started = performance.now();
        // Port 9 (discard) on loopback is closed.
        const refused = await pullModel({source: "http://127.0.0.1:9/model.gguf", modelsDir: dir, timeoutSeconds: 1, progressBar: false}).catch((error: unknown) => error);
        expect(refused).toBeInstanceOf(Error);
        expect(performance.now() - started).toBeLessThan(5000);

        // A host that accepts connections and never answers: the hf: resolver would wait for minutes.
        const silent = net.createServer(() => {});
        await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
        const previous = process.env.HF_ENDPOINT;
        process.env.HF_ENDPOINT = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
        try {
            started = performance.now();
            const hung = await pullModel({source: "hf:someone/tiny-GGUF:Q4_K_M", modelsDir: dir, timeoutSeconds: 1, progressBar: false}).catch((error: unknown) => error);
            expect((hung as Error).message).toMatch(/no answer from the download server within 1 s/);
            expect(performance.now() - started).toBeLessThan(5000);
        } finally {
            if (previous == null) delete process.env.HF_ENDPOINT;
            else process.env.HF_ENDPOINT = previous;
            silent.close();
        }
    });
});

function runCli(args: string[]) {
    return runToEnd([path.join(repoRoot, "src/cli/main.ts"), ...args]);
}

describe("edge-llm pull / models inspect / models rm", () => {
    it.skipIf(!isStories260K)("pulls a catalog model by name, inspects it with a memory estimate and deletes it", async () => {
        const dir = await mkdtemp(path.join(tmp, "cli-"));
        await writeFile(path.join(dir, "catalog.json"), JSON.stringify({
            default: "tiny",
            models: [{id: "tiny", name: "Tiny", uri: `${server.url}/stories260K.gguf`, file: "tiny.gguf", sha256: sha256(model)}]
        }));
        const pulled = await runCli(["pull", "tiny", "--models-dir", dir]);
        expect(pulled.code, pulled.stderr).toBe(0);
        expect(pulled.stdout).toContain(`Pulled: ${path.join(dir, "tiny.gguf")} (1.2 MB, sha256 verified)`);

        const inspected = await runCli(["models", "inspect", "tiny", "--models-dir", dir, "--json", "--parallel", "2", "--ctx-size", "512", "--gpu", "cpu"]);
        expect(inspected.code, inspected.stderr).toBe(0);
        const inspection = JSON.parse(inspected.stdout) as Record<string, any>;
        expect(inspection).toMatchObject({file: "tiny.gguf", architecture: "llama", layers: 5, kvHeads: 4, vocabularySize: 512, kvBytesPerToken: 640, chatTemplate: false});
        expect(inspection.metadata["general.architecture"]).toBe("llama");
        expect(inspection.memory).toMatchObject({contextSize: 512, sequences: 2, onGpu: false, decision: "fit"});
        expect(inspection.memory.modelBytes).toBeGreaterThan(1_000_000);
        expect(inspection.memory.contextBytes).toBeGreaterThan(0);

        const removed = await runCli(["models", "rm", "tiny", "--models-dir", dir]);
        expect(removed.code, removed.stderr).toBe(0);
        expect(removed.stdout).toContain(`Deleted ${path.join(dir, "tiny.gguf")}`);
        expect(existsSync(path.join(dir, "tiny.gguf"))).toBe(false);
    });
});
