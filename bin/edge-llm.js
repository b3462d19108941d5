#!/usr/bin/env node
// The CLI is TypeScript compiled by `npm run build` into dist/.
try {
    await import("../dist/src/cli/main.js");
} catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND" && String(error.message).includes("dist/src/cli/main.js")) {
        process.stderr.write("edge-llm is not built yet: run `npm run build` in the edge-llm folder first.\n");
        process.exit(1);
    }
    throw error;
}
