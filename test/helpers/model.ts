import {existsSync} from "node:fs";
import path from "node:path";
import {fileURLToPath} from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The real test model: $EDGE_LLM_TEST_MODEL, else ../shared/models/stories260K.gguf beside the repo. */
export const testModelPath = path.resolve(
    repoRoot,
    process.env.EDGE_LLM_TEST_MODEL ?? "../shared/models/stories260K.gguf"
);

if (!existsSync(testModelPath))
    throw new Error(`Test model not found at ${testModelPath}. Set EDGE_LLM_TEST_MODEL or run "npm run fetch-test-model" on a machine with internet.`);
