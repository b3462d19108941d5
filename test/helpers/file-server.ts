import http from "node:http";
import type {AddressInfo} from "node:net";

export interface ServedRequest {
    method: string;
    path: string;
    range?: string;
    bytesSent: number;
}

/**
 * A loopback HTTP file server with Range support, standing in for Hugging Face or any model
 * host. `cutAfter(bytes)` lets ranged responses send that many bytes in all; the response that
 * reaches the limit drops its connection and every later connection is refused until `restore()`
 * (a network cut).
 */
export class FileServer {
    readonly requests: ServedRequest[] = [];
    private cutBudget?: number;
    private down = false;
    private readonly server: http.Server;
    url = "";

    constructor(private readonly files: Record<string, Buffer>) {
        this.server = http.createServer((request, response) => this.handle(request, response));
    }

    async start() {
        await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
        this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
        return this;
    }

    cutAfter(afterBytes: number) {
        this.cutBudget = afterBytes;
    }

    restore() {
        this.down = false;
    }

    async stop() {
        this.server.closeAllConnections();
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }

    private handle(request: http.IncomingMessage, response: http.ServerResponse) {
        const url = new URL(request.url ?? "/", "http://localhost");
        const record: ServedRequest = {method: request.method ?? "GET", path: decodeURIComponent(url.pathname), range: request.headers.range, bytesSent: 0};
        this.requests.push(record);
        if (this.down) {
            request.socket.destroy();
            return;
        }
        const data = this.files[record.path];
        if (data == null) {
            response.writeHead(404, {"content-type": "text/plain"}).end("not found");
            return;
        }
        const match = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? "");
        const start = match == null ? 0 : Number(match[1]);
        const end = match?.[2] ? Math.min(Number(match[2]), data.length - 1) : data.length - 1;
        response.writeHead(match == null ? 200 : 206, {
            "content-type": "application/octet-stream",
            "accept-ranges": "bytes",
            "content-length": end - start + 1,
            ...(match == null ? {} : {"content-range": `bytes ${start}-${end}/${data.length}`})
        });
        if (request.method === "HEAD") {
            response.end();
            return;
        }
        const body = data.subarray(start, end + 1);
        if (match != null && this.cutBudget != null && body.length > this.cutBudget) {
            const allowed = this.cutBudget;
            this.cutBudget = undefined;
            this.down = true;
            record.bytesSent = allowed;
            response.write(body.subarray(0, allowed), () => setTimeout(() => request.socket.destroy(), 20));
            return;
        }
        if (match != null && this.cutBudget != null) this.cutBudget -= body.length;
        record.bytesSent = body.length;
        response.end(body);
    }
}
