/**
 * Makes sure the real test model is present before the tests run (npm's pretest step).
 * Found at $EDGE_LLM_TEST_MODEL or ../shared/models/stories260K.gguf: only its checksum is
 * checked. Missing: downloaded from Hugging Face into .cache/ where the machine is online,
 * with a timeout so an offline machine fails in seconds, not hangs. Offline, it writes the
 * synthetic tiny model instead (scripts/fixtures/synthetic-model.ts) so the suite still runs; the
 * tests of stories260K's own text then skip.
 */
import {createHash} from "node:crypto";
import {existsSync} from "node:fs";
import {mkdir, readFile, rename, writeFile} from "node:fs/promises";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {ensureSyntheticModel} from "./fixtures/synthetic-model.js";

const SHA256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";
const URL = "https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf";
const TIMEOUT_MS = 20_000;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const candidates = [
    process.env.EDGE_LLM_TEST_MODEL,
    "../shared/models/stories260K.gguf",
    ".cache/stories260K.gguf"
].filter((entry): entry is string => entry != null).map((entry) => path.resolve(root, entry));

const sha256 = async (file: string) => createHash("sha256").update(await readFile(file)).digest("hex");

const found = candidates.find((file) => existsSync(file));
if (found != null) {
    if (process.env.EDGE_LLM_TEST_MODEL == null && (await sha256(found)) !== SHA256) {
        console.error(`${found} is not stories260K.gguf (sha256 mismatch); remove it or set EDGE_LLM_TEST_MODEL.`);
        process.exit(1);
    }
    process.exit(0);
}

const target = path.join(root, ".cache/stories260K.gguf");
console.error(`Test model not found; downloading ${URL} (timeout ${TIMEOUT_MS / 1000} s)…`);
try {
    const response = await fetch(URL, {signal: AbortSignal.timeout(TIMEOUT_MS)});
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const bytes = Buffer.from(await response.arrayBuffer());
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== SHA256) throw new Error(`sha256 mismatch: got ${actual}`);
    await mkdir(path.dirname(target), {recursive: true});
    await writeFile(`${target}.partial`, bytes);
    await rename(`${target}.partial`, target);
    console.error(`Saved ${target}`);
} catch (error) {
    const synthetic = await ensureSyntheticModel("tiny", path.join(root, ".cache/models"));
    console.error(`Cannot get the test model (${(error as Error).message}); the tests use the synthetic ${synthetic} ` +
        "and skip those about stories260K's own text. Put stories260K.gguf at ../shared/models/ or set EDGE_LLM_TEST_MODEL to run them.");
}
