/**
 * The server under test, in its own process as users run it: loads the model with the given
 * threads and prints one JSON line with its URL.
 */
import {LlamaCppBackend} from "../../src/backends/llama-cpp/backend.js";
import {Runtime} from "../../src/runtime/runtime.js";
import {startServer} from "../../src/api/server.js";

const [modelPath, threads, contextSize] = process.argv.slice(2);
const runtime = new Runtime(await LlamaCppBackend.create({gpu: false}));
await runtime.load({path: modelPath!, id: "bench", parallel: 1, threads: Number(threads), contextSize: Number(contextSize)});
const server = await startServer({runtime, host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20, maxWsFrameBytes: 1 << 20});
process.stdout.write(JSON.stringify({url: server.url}) + "\n");
process.on("SIGTERM", async () => {
    await server.close();
    await runtime.dispose();
    process.exit(0);
});
