import type {KvCacheType} from "../../src/backends/backend.js";
import {LlamaCppBackend} from "../../src/backends/llama-cpp/backend.js";
import {Runtime, type RuntimeOptions} from "../../src/runtime/runtime.js";
import {startServer, type RunningServer} from "../../src/api/server.js";
import {testModelPath} from "./model.js";
import type {PowerView} from "../../src/power/status.js";
import type {AccessControl} from "../../src/api/security/access.js";

export interface TestServer extends RunningServer {
    runtime: Runtime;
    modelId: string;
    /** Stops the server and frees the model. */
    stop(): Promise<void>;
}

export interface TestServerOptions extends RuntimeOptions {
    parallel?: number;
    contextSize?: number;
    kvCacheType?: KvCacheType;
    maxBodyBytes?: number;
    maxWsFrameBytes?: number;
    /** Builds the power view (e.g. a PowerService over a fake sysfs tree) for the runtime. */
    power?: (runtime: Runtime) => PowerView & {stop?(): void; apply?(): void};
    adminToken?: string;
    /** A draft model for speculative decoding. */
    draftPath?: string;
    /** API keys, rate limit, CORS origins. */
    access?: AccessControl;
}

/** The real server on a free loopback port, serving the real test model. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
    const backend = await LlamaCppBackend.create({gpu: false, logger: (level, message) => level === "error" && console.error(message)});
    const runtime = new Runtime(backend, {maxQueued: options.maxQueued, kv: options.kv, onEvent: options.onEvent, contextOverflow: options.contextOverflow, speculation: options.speculation});
    const modelId = "stories260K";
    await runtime.load({path: testModelPath, id: modelId, parallel: options.parallel ?? 2, contextSize: options.contextSize ?? 512, kvCacheType: options.kvCacheType, draftPath: options.draftPath});
    const power = options.power?.(runtime);
    power?.apply?.();
    const server = await startServer({
        runtime,
        host: "127.0.0.1",
        port: 0,
        maxBodyBytes: options.maxBodyBytes ?? 1024 * 1024,
        maxWsFrameBytes: options.maxWsFrameBytes ?? 256 * 1024,
        power,
        adminToken: options.adminToken,
        access: options.access
    });
    return {
        ...server,
        runtime,
        modelId,
        async stop() {
            power?.stop?.();
            await server.close();
            await runtime.dispose();
        }
    };
}
