import {afterAll, beforeAll, describe, expect, it} from "vitest";
import OpenAI from "openai";
import {WebSocket} from "ws";
import {startTestServer, type TestServer} from "./helpers/server.js";
import {AccessControl} from "../src/api/security/access.js";
import {ApiKeySet} from "../src/api/security/api-keys.js";
import {RateLimiter} from "../src/api/security/rate-limit.js";

const KEY = "test-key-0123456789";
let server: TestServer;
let limited: TestServer;

beforeAll(async () => {
    [server, limited] = await Promise.all([
        startTestServer({
            parallel: 1,
            maxBodyBytes: 8 * 1024,
            maxWsFrameBytes: 4 * 1024,
            access: new AccessControl({apiKeys: new ApiKeySet([KEY, "second-key-abcdefgh"]), corsOrigins: ["https://app.example"]})
        }),
        // No keys: the rate limit counts per client address.
        startTestServer({parallel: 1, access: new AccessControl({rateLimiter: new RateLimiter({requestsPerMinute: 60, burst: 3})})})
    ]);
});
afterAll(async () => {
    await server?.stop();
    await limited?.stop();
});

const body = {model: "stories260K", messages: [{role: "user" as const, content: "Hi"}], max_tokens: 2};

function post(target: TestServer, path: string, payload: unknown, headers: Record<string, string> = {}) {
    return fetch(`${target.url}${path}`, {method: "POST", headers: {"content-type": "application/json", ...headers}, body: JSON.stringify(payload)});
}

/** Opens a socket; resolves with it, or rejects with the refused upgrade's status and body. */
function connect(url: string, options: {headers?: Record<string, string>; protocols?: string[]} = {}) {
    return new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(url.replace(/^http/, "ws"), options.protocols, {headers: options.headers});
        ws.once("open", () => resolve(ws));
        ws.once("unexpected-response", (_request, response) => {
            let text = "";
            response.on("data", (chunk: Buffer) => { text += chunk.toString(); });
            response.on("end", () => reject(Object.assign(new Error(`upgrade refused: ${response.statusCode}`), {status: response.statusCode, headers: response.headers, body: text})));
        });
        ws.once("error", () => {});
    });
}

describe("API keys over HTTP", () => {
    it("the OpenAI client with a wrong or missing key gets 401 invalid_api_key; the right key works", async () => {
        const wrong = new OpenAI({baseURL: `${server.url}/v1`, apiKey: "nope", maxRetries: 0});
        const failure = await wrong.chat.completions.create(body).catch((error: unknown) => error);
        expect(failure).toBeInstanceOf(OpenAI.AuthenticationError);
        expect((failure as InstanceType<typeof OpenAI.AuthenticationError>).code).toBe("invalid_api_key");

        const missing = await post(server, "/v1/chat/completions", body);
        expect(missing.status).toBe(401);
        expect(await missing.json()).toEqual({error: {message: expect.stringContaining("API key"), type: "invalid_request_error", param: null, code: "invalid_api_key"}});

        for (const key of [KEY, "second-key-abcdefgh"]) {
            const client = new OpenAI({baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0});
            const answer = await client.chat.completions.create(body);
            expect(answer.choices[0]!.finish_reason).toBeDefined();
        }
    });

    it("guards /v1/models and /metrics; /health stays open", async () => {
        expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);
        expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
        expect((await fetch(`${server.url}/metrics`, {headers: {authorization: `Bearer ${KEY}`}})).status).toBe(200);
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
    });

    it("refuses a client without a key before reading its body, and limits body size for those with one", async () => {
        const big = {...body, messages: [{role: "user", content: "x".repeat(20_000)}]};
        expect((await post(server, "/v1/chat/completions", big)).status).toBe(401);
        const tooLarge = await post(server, "/v1/chat/completions", big, {authorization: `Bearer ${KEY}`});
        expect(tooLarge.status).toBe(413);
        expect((await tooLarge.json() as {error: {code: string}}).error.code).toBe("request_too_large");
    });
});

describe("CORS", () => {
    it("answers preflights for allowed origins only", async () => {
        const preflight = (origin: string) => fetch(`${server.url}/v1/chat/completions`, {
            method: "OPTIONS",
            headers: {origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type"}
        });
        const allowed = await preflight("https://app.example");
        expect(allowed.status).toBe(204);
        expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example");
        expect(allowed.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
        const other = await preflight("https://evil.example");
        expect(other.headers.get("access-control-allow-origin")).toBeNull();
    });

    it("is off by default: no CORS headers at all", async () => {
        const response = await fetch(`${limited.url}/health`, {headers: {origin: "https://app.example"}});
        expect(response.headers.get("access-control-allow-origin")).toBeNull();
    });
});

describe("API keys on the WebSocket upgrade", () => {
    const wsUrl = () => `${server.url}/v1/ws`;

    it("refuses an upgrade without a valid key with 401 and an OpenAI error body", async () => {
        for (const attempt of [connect(wsUrl()), connect(`${wsUrl()}?api_key=wrong`), connect(wsUrl(), {headers: {authorization: "Bearer wrong"}})]) {
            const refused = await attempt.then(() => undefined, (error: {status: number; body: string; headers: Record<string, string>}) => error);
            expect(refused?.status).toBe(401);
            expect(refused?.headers["www-authenticate"]).toBe("Bearer");
            expect(JSON.parse(refused!.body)).toMatchObject({error: {code: "invalid_api_key", type: "invalid_request_error"}});
        }
    });

    it("accepts the key as a header, a query parameter or a subprotocol (browsers), and serves requests", async () => {
        const sockets = await Promise.all([
            connect(wsUrl(), {headers: {authorization: `Bearer ${KEY}`}}),
            connect(`${wsUrl()}?api_key=${KEY}`),
            connect(wsUrl(), {protocols: ["edge-llm", `bearer.${KEY}`]})
        ]);
        expect(sockets[2]!.protocol).toBe("edge-llm");
        for (const [index, ws] of sockets.entries()) {
            const frames: {type: string; id: string}[] = [];
            const done = new Promise<void>((resolve) => ws.on("message", (data) => {
                const frame = JSON.parse(data.toString()) as {type: string; id: string};
                frames.push(frame);
                if (frame.type === "done" || frame.type === "error") resolve();
            }));
            ws.send(JSON.stringify({type: "chat", id: `r${index}`, body}));
            await done;
            expect(frames.at(-1)!.type).toBe("done");
            ws.close();
        }
    });

    it("refuses browser origins that are not allowed (403)", async () => {
        const refused = await connect(`${wsUrl()}?api_key=${KEY}`, {headers: {origin: "https://evil.example"}}).catch((error: {status: number}) => error);
        expect((refused as {status: number}).status).toBe(403);
        const allowed = await connect(`${wsUrl()}?api_key=${KEY}`, {headers: {origin: "https://app.example"}});
        allowed.close();
    });

    it("limits frame size: an oversized frame gets frame_too_large", async () => {
        const ws = await connect(`${wsUrl()}?api_key=${KEY}`);
        const answer = new Promise<{type: string; error: {code: string}}>((resolve) => ws.once("message", (data) => resolve(JSON.parse(data.toString()))));
        ws.send(JSON.stringify({type: "chat", id: "big", body: {...body, messages: [{role: "user", content: "x".repeat(5000)}]}}));
        expect(await answer).toMatchObject({type: "error", error: {code: "frame_too_large"}});
        ws.close();
    });
});

describe("rate limit", () => {
    it("over HTTP: 429 rate_limit_exceeded with Retry-After once the burst is spent, per client", async () => {
        const statuses: number[] = [];
        let refused: Response | undefined;
        for (let index = 0; index < 5; index++) {
            const response = await post(limited, "/v1/chat/completions", {...body, max_tokens: 1});
            statuses.push(response.status);
            if (response.status === 429) refused = response;
            else await response.arrayBuffer();
        }
        expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
        expect(statuses.slice(3)).toEqual([429, 429]);
        expect(refused!.headers.get("retry-after")).toBe("1");
        expect(await refused!.json()).toMatchObject({error: {type: "rate_limit_error", code: "rate_limit_exceeded"}});
        // /health is not counted.
        expect((await fetch(`${limited.url}/health`)).status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 1100));
        expect((await post(limited, "/v1/chat/completions", {...body, max_tokens: 1})).status).toBe(200);
    });

    it("over the WebSocket: request frames count; the refused one gets an error frame with retry_after", async () => {
        await new Promise((resolve) => setTimeout(resolve, 3100)); // a full bucket again
        const ws = await connect(`${limited.url}/v1/ws`); // the upgrade takes one token
        const frames: {type: string; id: string; status?: number; retry_after?: number}[] = [];
        const settled = new Promise<void>((resolve) => ws.on("message", (data) => {
            frames.push(JSON.parse(data.toString()));
            if (frames.filter((frame) => frame.type === "done" || frame.type === "error").length === 3) resolve();
        }));
        for (const id of ["a", "b", "c"]) ws.send(JSON.stringify({type: "completion", id, body: {model: "stories260K", prompt: "x", max_tokens: 1}}));
        await settled;
        const terminal = frames.filter((frame) => frame.type !== "delta");
        expect(terminal.filter((frame) => frame.type === "done").map((frame) => frame.id)).toEqual(["a", "b"]);
        expect(terminal.find((frame) => frame.type === "error")).toMatchObject({id: "c", status: 429, retry_after: 1});
        ws.close();
    });
});
