import {existsSync} from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Written by `npm run fetch-test-model` (npm's pretest) where stories260K cannot be had. */
export const syntheticTestModelPath = path.resolve(repoRoot, ".cache/models/synthetic-tiny.gguf");

/**
 * The real test model: $EDGE_LLM_TEST_MODEL, else ../shared/models/stories260K.gguf beside the
 * repo, else the copy `npm run fetch-test-model` downloads into .cache/, else the synthetic tiny
 * model it writes when offline (meaningless text: tests of stories260K's own text skip).
 */
export const testModelPath = process.env.EDGE_LLM_TEST_MODEL != null
    ? path.resolve(repoRoot, process.env.EDGE_LLM_TEST_MODEL)
    : [path.resolve(repoRoot, "../shared/models/stories260K.gguf"), path.resolve(repoRoot, ".cache/stories260K.gguf"), syntheticTestModelPath]
        .find((file) => existsSync(file)) ?? path.resolve(repoRoot, "../shared/models/stories260K.gguf");

/** Tests that assert stories260K's own text, shapes or token counts run only on it. */
export const isStories260K = /stories260K\.gguf$/i.test(testModelPath);

if (!existsSync(testModelPath))
    throw new Error(`Test model not found at ${testModelPath}. Set EDGE_LLM_TEST_MODEL or run "npm run fetch-test-model".`);
