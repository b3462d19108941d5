import type {AddressInfo} from "node:net";
import type {Server} from "node:http";
import {serve} from "@hono/node-server";
import type {Runtime} from "../runtime/runtime.js";
import {singleRuntimeHost, type ModelHost} from "../runtime/model-pool.js";
import type {Logger} from "../logger.js";
import {createApp} from "./app.js";
import {attachWebSocketApi} from "./ws/server.js";
import type {PowerView} from "../power/status.js";
import type {AccessControl} from "./security/access.js";

/** How long close() waits for responses already ending (streams were ended by the runtime's shutdown). */
const CLOSE_WAIT_MS = 1000;

export interface ServerOptions {
    /** One loaded runtime (tests, benchmarks) … */
    runtime?: Runtime;
    /** … or the model pool: every request's `model` picks (and loads) one. */
    models?: ModelHost;
    host: string;
    port: number;
    maxBodyBytes: number;
    maxWsFrameBytes: number;
    power?: PowerView;
    /** Bearer token for /admin endpoints; unset: they are disabled. */
    adminToken?: string;
    logger?: Logger;
    /** API keys, rate limit and CORS origins for HTTP and the WebSocket upgrade. */
    access?: AccessControl;
}

export interface RunningServer {
    /** Base URL, e.g. http://127.0.0.1:8080 */
    url: string;
    port: number;
    /** Stops listening (open connections go on; idle keep-alive ones close). Shutdown's first step. */
    stopAccepting(): void;
    /** Closes every connection and socket (WebSocket requests in flight are cancelled). */
    close(): Promise<void>;
}

/** Starts HTTP (OpenAI routes, /health) and the WebSocket API on one port. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
    const {logger} = options;
    const models = options.models ?? singleRuntimeHost(options.runtime!);
    const app = createApp({
        models,
        maxBodyBytes: options.maxBodyBytes,
        power: options.power,
        adminToken: options.adminToken,
        access: options.access,
        onError: (error) => logger?.error({err: error}, "request failed")
    });

    const server = await new Promise<Server>((resolve, reject) => {
        const created = serve({fetch: app.fetch, hostname: options.host, port: options.port}, () => resolve(created as Server));
        (created as Server).once("error", reject);
    });
    server.on("error", (error) => logger?.error({err: error}, "server error"));
    const ws = attachWebSocketApi(server, models, {maxFrameBytes: options.maxWsFrameBytes, power: options.power, logger, access: options.access});

    const address = server.address() as AddressInfo;
    const hostForUrl = address.family === "IPv6" ? `[${address.address}]` : address.address;
    let stopped: Promise<void> | undefined;
    const stopListening = () => stopped ??= new Promise<void>((resolve) => server.close(() => resolve()));
    // Responses still being written: close() lets them finish (their last bytes, an SSE stream's
    // [DONE]) before it cuts what is left. Once stopping, a keep-alive connection whose response
    // ends is closed too: otherwise a client could keep sending requests after the listener is gone.
    const open = new Set<import("node:http").ServerResponse>();
    let allFinished: (() => void) | undefined;
    server.on("request", (_request, response) => {
        if (stopped != null && !response.headersSent) response.setHeader("connection", "close");
        open.add(response);
        response.once("close", () => {
            open.delete(response);
            if (open.size === 0) allFinished?.();
        });
        response.once("finish", () => {
            if (stopped != null) setImmediate(() => server.closeIdleConnections?.());
        });
    });
    return {
        url: `http://${hostForUrl}:${address.port}`,
        port: address.port,
        stopAccepting() {
            void stopListening();
            server.closeIdleConnections?.();
        },
        async close() {
            await ws.close();
            if (open.size > 0)
                await new Promise<void>((resolve) => {
                    allFinished = resolve;
                    setTimeout(resolve, CLOSE_WAIT_MS).unref();
                });
            server.closeAllConnections?.();
            await stopListening();
        }
    };
}
