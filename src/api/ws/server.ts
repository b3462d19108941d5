import type {Server} from "node:http";
import type {Runtime} from "../../runtime/runtime.js";
import type {Logger} from "../../logger.js";

export interface WebSocketApiOptions {
    maxFrameBytes: number;
    logger?: Logger;
}

/** PLACEHOLDER — being implemented. Attaches the /v1/ws WebSocket API to `server`. */
export function attachWebSocketApi(_server: Server, _runtime: Runtime, _options: WebSocketApiOptions): {close(): Promise<void>} {
    return {close: async () => {}};
}
