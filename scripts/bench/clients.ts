import WebSocket from "ws";

/** One measured decode: tokens generated, time to first token, steady decode rate. */
export interface DecodeSample {
    tokens: number;
    ttftMs: number;
    tokensPerSecond: number;
}

export interface DecodeJob {
    prompt: string;
    maxTokens: number;
}

function sample(tokens: number, start: number, first: number, last: number): DecodeSample {
    // A tiny model's whole answer can arrive in one read: then the rate includes the time to the first token.
    const tokensPerSecond = last > first ? (tokens - 1) / ((last - first) / 1000) : last > start ? tokens / ((last - start) / 1000) : 0;
    return {tokens, ttftMs: first > 0 ? first - start : 0, tokensPerSecond};
}

/** Streams a completion over SSE, reading the wire format by hand (no client library overhead). */
export async function decodeOverSse(url: string, job: DecodeJob): Promise<DecodeSample> {
    const start = performance.now();
    const response = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({model: "bench", prompt: job.prompt, max_tokens: job.maxTokens, temperature: 0, stream: true, stream_options: {include_usage: true}})
    });
    let first = 0;
    let last = 0;
    let tokens = 0;
    let tokenChunks = 0;
    for await (const {chunk, at} of sseChunks(response)) {
        if (chunk.error != null) throw new Error(`the stream ended in an error: ${chunk.error.message ?? JSON.stringify(chunk.error)}`);
        if (chunk.usage != null) tokens = chunk.usage.completion_tokens;
        const choice = chunk.choices?.[0];
        // edge-llm sends text (several tokens per chunk when they come fast); llama-server sends a
        // chunk per token, with empty text while a character's UTF-8 bytes are incomplete.
        if (choice != null && choice.finish_reason == null) {
            tokenChunks++;
            if (first === 0) first = at;
            last = at;
        }
    }
    // llama-server may not report usage: one chunk per token there.
    return sample(tokens > 0 ? tokens : tokenChunks, start, first, last);
}

/**
 * The JSON chunks of an OpenAI SSE response, each with the time its bytes arrived, read by hand
 * (no client library overhead in the measurement). `[DONE]` ends it.
 */
export async function* sseChunks(response: Response): AsyncGenerator<{chunk: any; at: number}> {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const bytes of response.body!) {
        const at = performance.now();
        buffer += decoder.decode(bytes, {stream: true});
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
            const event = buffer.slice(6, end);
            buffer = buffer.slice(end + 2);
            if (event !== "[DONE]") yield {chunk: JSON.parse(event), at};
        }
    }
}

/** Streams a completion over the WebSocket API on an open socket. */
export function decodeOverWs(socket: WebSocket, job: DecodeJob, id: string): Promise<DecodeSample> {
    return new Promise((resolve, reject) => {
        const start = performance.now();
        let first = 0;
        let last = 0;
        const onMessage = (data: WebSocket.RawData) => {
            const now = performance.now();
            const frame = JSON.parse(data.toString());
            if (frame.id !== id) return;
            if (frame.type === "delta") {
                if (first === 0) first = now;
                last = now;
            } else if (frame.type === "done") {
                socket.off("message", onMessage);
                resolve(sample(frame.usage.completion_tokens, start, first, last));
            } else if (frame.type === "error") {
                socket.off("message", onMessage);
                reject(new Error(frame.error.message));
            }
        };
        socket.on("message", onMessage);
        socket.send(JSON.stringify({type: "completion", id, body: {model: "bench", prompt: job.prompt, max_tokens: job.maxTokens, temperature: 0}}));
    });
}

export function openSocket(url: string): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
        const socket = new WebSocket(`${url.replace(/^http/, "ws")}/v1/ws`);
        socket.once("open", () => resolve(socket));
        socket.once("error", reject);
    });
}
