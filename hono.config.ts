import {defineConfig} from "./src/config/schema.js";

/**
 * edge-llm settings. Environment variables (EDGE_LLM_*) and command-line flags override these.
 * Every field is optional; see src/config/schema.ts for all of them and their defaults.
 */
export default defineConfig({
    host: "127.0.0.1",
    port: 8080
    // model: "models/my-model.gguf",
    // parallel: 4,
    // ctxSize: 2048,
    // threads: 2,
});
