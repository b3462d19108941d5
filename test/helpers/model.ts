import {existsSync} from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * The real test model: $EDGE_LLM_TEST_MODEL, else ../shared/models/stories260K.gguf beside the
 * repo, else the copy `npm run fetch-test-model` downloads into .cache/.
 */
export const testModelPath = process.env.EDGE_LLM_TEST_MODEL != null
    ? path.resolve(repoRoot, process.env.EDGE_LLM_TEST_MODEL)
    : [path.resolve(repoRoot, "../shared/models/stories260K.gguf"), path.resolve(repoRoot, ".cache/stories260K.gguf")]
        .find((file) => existsSync(file)) ?? path.resolve(repoRoot, "../shared/models/stories260K.gguf");

if (!existsSync(testModelPath))
    throw new Error(`Test model not found at ${testModelPath}. Set EDGE_LLM_TEST_MODEL or run "npm run fetch-test-model" on a machine with internet.`);
