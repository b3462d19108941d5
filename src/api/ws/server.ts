import {STATUS_CODES, type IncomingMessage, type Server} from "node:http";
import type {Duplex} from "node:stream";
import {WebSocket, WebSocketServer} from "ws";
import type {Logger} from "../../logger.js";
import type {GenerationEngine} from "../../runtime/model-pool.js";
import {WsSession} from "./session.js";
import {powerFrame} from "./protocol.js";
import type {PowerView} from "../../power/status.js";
import {type AccessControl, selectWsProtocol} from "../security/access.js";
import {toOpenAIError} from "../openai/errors.js";
import {STREAM_COALESCE_MS} from "../flush-scheduler.js";

/** The one path that upgrades to the WebSocket API; every other upgrade gets a 404. */
export const WS_PATH = "/v1/ws";

export interface WebSocketApiOptions {
    /** Largest text frame a client may send, in bytes; larger ones get a `frame_too_large` error frame. */
    maxFrameBytes: number;
    /**
     * Frames above this many bytes are not read at all: the socket closes with 1009.
     * Default 4 × `maxFrameBytes` (at least `maxFrameBytes` + 64 KiB).
     */
    closeFrameBytes?: number;
    /** A request stops pulling tokens while its socket buffers more than this many bytes. Default 1 MiB. */
    maxBufferedBytes?: number;
    /** Requests one socket may have in flight. Default 32. */
    maxRequestsPerSocket?: number;
    /**
     * Deltas are written at most once per this many milliseconds per socket; what a request
     * produces in between goes out as one frame. Only fast decoders (> ~60 tok/s) are affected.
     * 0 = one frame per delta. Default 16 (`STREAM_COALESCE_MS`).
     */
    coalesceMs?: number;
    /** Interval of server pings; a socket that missed the previous pong is terminated. 0 = off. Default 30 s. */
    heartbeatMs?: number;
    /** How long `close()` waits for clients to answer the close handshake before cutting them. Default 1 s. */
    closeGraceMs?: number;
    /** Level changes are broadcast to every socket as `power` frames. */
    power?: PowerView;
    logger?: Logger;
    /** Origin, API key and rate checks of the upgrade; each request frame also counts against the client's rate. */
    access?: AccessControl;
}

const defaultWebSocketApiOptions = {
    maxBufferedBytes: 1024 * 1024,
    maxRequestsPerSocket: 32,
    coalesceMs: STREAM_COALESCE_MS,
    heartbeatMs: 30_000,
    closeGraceMs: 1000
} satisfies Partial<Required<WebSocketApiOptions>>;

export interface WebSocketApi {
    /** Sockets currently open. */
    readonly connections: number;
    /** Refuses new sockets, cancels every request (freeing its sequence) and closes all sockets with 1001. */
    close(): Promise<void>;
}

/** Attaches the `/v1/ws` WebSocket API to `server`'s `upgrade` event. */
export function attachWebSocketApi(server: Server, runtime: GenerationEngine, options: WebSocketApiOptions): WebSocketApi {
    const settings = {...defaultWebSocketApiOptions, ...withoutUndefined(options)};
    const {logger} = options;
    const closeFrameBytes = settings.closeFrameBytes ?? Math.max(4 * settings.maxFrameBytes, settings.maxFrameBytes + 64 * 1024);
    if (!(settings.maxFrameBytes > 0) || !(closeFrameBytes >= settings.maxFrameBytes))
        throw new RangeError(`WebSocket frame limits must satisfy 0 < maxFrameBytes (${settings.maxFrameBytes}) <= closeFrameBytes (${closeFrameBytes})`);
    const wss = new WebSocketServer({noServer: true, maxPayload: closeFrameBytes, perMessageDeflate: false, handleProtocols: selectWsProtocol});
    const sessions = new Map<WebSocket, WsSession>();
    const alive = new WeakSet<WebSocket>();
    let closing = false;

    const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
        try {
            socket.on("error", (error) => logger?.debug({err: error}, "websocket: upgrade socket error"));
            if (closing)
                return rejectUpgrade(socket, 503, "Service Unavailable");
            if (pathOf(request.url) !== WS_PATH)
                return rejectUpgrade(socket, 404, "Not Found");
            let client: string | undefined;
            try {
                client = options.access?.authorizeUpgrade(request);
            } catch (error) {
                return rejectUpgradeWithError(socket, error);
            }
            wss.handleUpgrade(request, socket, head, (ws) => accept(ws, client));
        } catch (error) {
            logger?.warn({err: error}, "websocket: upgrade failed");
            socket.destroy();
        }
    };

    const accept = (ws: WebSocket, client: string | undefined) => {
        if (closing) {
            ws.terminate();
            return;
        }
        const session = new WsSession(ws, runtime, {
            maxFrameBytes: settings.maxFrameBytes,
            maxBufferedBytes: settings.maxBufferedBytes,
            maxRequestsPerSocket: settings.maxRequestsPerSocket,
            coalesceMs: settings.coalesceMs,
            admit: client == null ? undefined : () => options.access!.admit(client)
        }, logger);
        sessions.set(ws, session);
        alive.add(ws);
        const power = options.power?.status();
        if (power != null && power.level !== "nominal")
            session.broadcast(powerFrame(power));
        ws.on("message", (data, isBinary) => session.receive(data, isBinary));
        ws.on("pong", () => alive.add(ws));
        // Frames over `closeFrameBytes` and protocol violations land here; ws then closes the socket.
        ws.on("error", (error) => logger?.debug({err: error}, "websocket: socket error"));
        ws.on("close", () => {
            sessions.delete(ws);
            session.dispose().catch((error) => logger?.warn({err: error}, "websocket: dispose failed"));
        });
    };

    const heartbeat = settings.heartbeatMs > 0
        ? setInterval(() => {
            for (const ws of sessions.keys()) {
                if (!alive.has(ws)) {
                    ws.terminate();
                    continue;
                }
                alive.delete(ws);
                try {
                    ws.ping();
                } catch (error) {
                    logger?.debug({err: error}, "websocket: ping failed");
                }
            }
        }, settings.heartbeatMs)
        : undefined;
    heartbeat?.unref();

    server.on("upgrade", onUpgrade);
    const unsubscribePower = options.power?.subscribe((status) => {
        const frame = powerFrame(status);
        for (const session of sessions.values()) session.broadcast(frame);
    });

    return {
        get connections() {
            return sessions.size;
        },
        async close() {
            if (closing) return;
            closing = true;
            server.off("upgrade", onUpgrade);
            unsubscribePower?.();
            if (heartbeat != null) clearInterval(heartbeat);
            const open = [...sessions];
            // Cancel first, so every sequence is free before the runtime behind us is disposed.
            await Promise.all(open.map(([, session]) => session.dispose()));
            await Promise.all(open.map(([ws]) => closeSocket(ws, settings.closeGraceMs)));
            await new Promise<void>((resolve) => wss.close(() => resolve()));
        }
    };
}

function closeSocket(ws: WebSocket, graceMs: number): Promise<void> {
    if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
        const timer = setTimeout(() => ws.terminate(), graceMs);
        ws.once("close", () => {
            clearTimeout(timer);
            resolve();
        });
        ws.close(1001, "server shutting down");
    });
}

function rejectUpgrade(socket: Duplex, status: number, reason: string) {
    if (socket.destroyed) return;
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
}

/** Refuses an upgrade with the error's status and its OpenAI error object as the body. */
function rejectUpgradeWithError(socket: Duplex, error: unknown) {
    if (socket.destroyed) return;
    const mapped = toOpenAIError(error);
    const body = JSON.stringify({error: mapped.error});
    const retryAfter = mapped.retryAfter == null ? "" : `Retry-After: ${mapped.retryAfter}\r\n`;
    const challenge = mapped.status === 401 ? "WWW-Authenticate: Bearer\r\n" : "";
    socket.end(
        `HTTP/1.1 ${mapped.status} ${STATUS_CODES[mapped.status] ?? "Error"}\r\n` +
        `Connection: close\r\nContent-Type: application/json\r\n${retryAfter}${challenge}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        () => socket.destroy()
    );
}

function pathOf(url: string | undefined): string {
    if (url == null) return "";
    const query = url.indexOf("?");
    return query === -1 ? url : url.slice(0, query);
}

function withoutUndefined<T extends object>(value: T): T {
    return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as T;
}
