/**
 * Soak run: `clients` loops over mixed endpoints against a running edge-llm for a while,
 * sampling the server's RSS (from /metrics) and each interval's time-to-first-token
 * percentiles. Used by scripts/soak.ts (10 minutes by default) and by test/soak.test.ts (CI).
 */
import {WebSocket} from "ws";

export interface SoakOptions {
    /** Base URL of the server, e.g. http://127.0.0.1:8080. */
    url: string;
    model: string;
    /** Concurrent clients. Default 8. */
    clients?: number;
    durationMs: number;
    /** Length of one reporting interval. Default 10 s. */
    intervalMs?: number;
    /** Memory growth is measured from the end of the warm-up. Default: one interval. */
    warmupMs?: number;
    /** Bearer key, when the server requires one. */
    apiKey?: string;
    /** Called after each interval. */
    onInterval?: (interval: SoakInterval) => void;
}

export interface SoakInterval {
    /** Seconds since the start, at the end of the interval. */
    atSeconds: number;
    requests: number;
    errors: number;
    /** Mean of the server's RSS, sampled every second of the interval (GC makes single samples jump). */
    rssBytes: number;
    rssMaxBytes: number;
    /** V8 heap in use: tells a JS leak (grows with RSS) from native memory (RSS alone). */
    heapUsedBytes: number;
    /** V8 heap committed (in use and free): RSS minus this is memory outside V8's heap. */
    heapTotalBytes: number;
    ttftP50Ms: number;
    ttftP99Ms: number;
}

export interface SoakReport {
    intervals: SoakInterval[];
    requests: number;
    /** Unexpected answers (anything but the status each operation expects), with examples. */
    errors: number;
    errorExamples: string[];
    requestsByOperation: Record<string, number>;
    /** Mean RSS of the first interval after the warm-up, and of the last one. */
    rssAfterWarmupBytes: number;
    rssEndBytes: number;
    /** (end - after warm-up) / after warm-up. */
    rssGrowth: number;
}

type Operation = (soak: SoakRun) => Promise<void>;

const MEMORY_SAMPLE_MS = 1000;
const PROMPT = "Once upon a time there was a little girl named Lily. She liked to";

/** Each operation checks its own answer and records time to first token where there is one. */
const operations: Record<string, Operation> = {
    "chat": async (soak) => {
        const started = performance.now();
        const body = await soak.post("/v1/chat/completions", {model: soak.model, messages: [{role: "user", content: PROMPT}], max_tokens: 24}, 200);
        soak.ttft(performance.now() - started);
        if (!(body as {choices?: unknown[]}).choices?.length) throw new Error("chat: no choices");
    },
    "chat-stream": (soak) => soak.stream("/v1/chat/completions", {model: soak.model, messages: [{role: "user", content: PROMPT}], max_tokens: 48, stream: true}),
    "completion-stream": (soak) => soak.stream("/v1/completions", {model: soak.model, prompt: PROMPT, max_tokens: 48, stream: true}),
    "websocket": (soak) => soak.websocket(),
    "models": async (soak) => { await soak.get("/v1/models", 200); },
    "health": async (soak) => { await soak.get("/health", 200); },
    "bad-request": async (soak) => { await soak.post("/v1/chat/completions", {model: soak.model, messages: []}, 400); },
    "dropped-stream": (soak) => soak.stream("/v1/completions", {model: soak.model, prompt: PROMPT, max_tokens: 200, stream: true}, 3)
};

class SoakRun {
    requests = 0;
    errors = 0;
    readonly errorExamples: string[] = [];
    ttfts: number[] = [];
    readonly byOperation: Record<string, number> = {};

    constructor(readonly url: string, readonly model: string, private readonly apiKey?: string) {}

    private headers(): Record<string, string> {
        return {"content-type": "application/json", ...(this.apiKey == null ? {} : {authorization: `Bearer ${this.apiKey}`})};
    }

    ttft(ms: number) {
        this.ttfts.push(ms);
    }

    fail(message: string) {
        this.errors++;
        if (this.errorExamples.length < 10) this.errorExamples.push(message);
    }

    async get(path: string, status: number) {
        const response = await fetch(`${this.url}${path}`, {headers: this.headers()});
        await response.arrayBuffer();
        if (response.status !== status) throw new Error(`GET ${path}: ${response.status}`);
    }

    async post(path: string, body: unknown, status: number) {
        const response = await fetch(`${this.url}${path}`, {method: "POST", headers: this.headers(), body: JSON.stringify(body)});
        const answer = await response.json() as unknown;
        if (response.status !== status) throw new Error(`POST ${path}: ${response.status} ${JSON.stringify(answer).slice(0, 200)}`);
        return answer;
    }

    /** Reads an SSE stream to [DONE] (or drops it after `dropAfterReads` reads). */
    async stream(path: string, body: unknown, dropAfterReads?: number) {
        const controller = new AbortController();
        const started = performance.now();
        const response = await fetch(`${this.url}${path}`, {method: "POST", headers: this.headers(), body: JSON.stringify(body), signal: controller.signal});
        if (response.status !== 200) throw new Error(`POST ${path} (stream): ${response.status} ${(await response.text()).slice(0, 200)}`);
        const reader = response.body!.getReader();
        const decoder = new TextDecoder();
        let text = "";
        let reads = 0;
        let first = true;
        for (;;) {
            const {done, value} = await reader.read();
            if (done) break;
            text += decoder.decode(value, {stream: true});
            // The first chunk with text (a chat stream starts with the role alone).
            if (first && /"(content|text)":"[^"]/.test(text)) {
                first = false;
                this.ttft(performance.now() - started);
            }
            if (dropAfterReads != null && ++reads >= dropAfterReads) {
                controller.abort();
                await reader.cancel().catch(() => {});
                return;
            }
        }
        if (!text.endsWith("data: [DONE]\n\n")) throw new Error(`POST ${path} (stream): no [DONE]`);
        if (text.includes("\"error\"")) throw new Error(`POST ${path} (stream): error event`);
    }

    websocket() {
        return new Promise<void>((resolve, reject) => {
            const started = performance.now();
            const ws = new WebSocket(`${this.url.replace(/^http/, "ws")}/v1/ws`, {headers: this.apiKey == null ? {} : {authorization: `Bearer ${this.apiKey}`}});
            let first = true;
            ws.on("error", reject);
            ws.on("open", () => ws.send(JSON.stringify({type: "chat", id: "soak", body: {model: this.model, messages: [{role: "user", content: PROMPT}], max_tokens: 48}})));
            ws.on("message", (data) => {
                const frame = JSON.parse(data.toString()) as {type: string};
                if (frame.type === "delta" && first) {
                    first = false;
                    this.ttft(performance.now() - started);
                }
                if (frame.type === "error") reject(new Error(`websocket: ${data.toString().slice(0, 200)}`));
                if (frame.type === "done") {
                    ws.close();
                    resolve();
                }
            });
        });
    }

    async memory(): Promise<{rss: number; heapUsed: number; heapTotal: number}> {
        const response = await fetch(`${this.url}/metrics`, {headers: this.headers()});
        const text = await response.text();
        const read = (name: string) => {
            const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
            if (match == null) throw new Error(`no ${name} in /metrics`);
            return Number(match[1]);
        };
        return {rss: read("edge_llm_process_resident_memory_bytes"), heapUsed: read("edge_llm_nodejs_heap_size_used_bytes"), heapTotal: read("edge_llm_nodejs_heap_size_total_bytes")};
    }
}

function percentile(values: number[], p: number) {
    if (values.length === 0) return 0;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
    const {clients = 8, durationMs, intervalMs = 10_000} = options;
    const warmupMs = options.warmupMs ?? intervalMs;
    const run = new SoakRun(options.url, options.model, options.apiKey);
    const names = Object.keys(operations);
    const started = performance.now();
    const end = started + durationMs;

    const client = async (index: number) => {
        for (let step = index; performance.now() < end; step++) {
            const name = names[step % names.length]!;
            run.byOperation[name] = (run.byOperation[name] ?? 0) + 1;
            run.requests++;
            try {
                await operations[name]!(run);
            } catch (error) {
                run.fail(`${name}: ${(error as Error).message}`);
            }
        }
    };

    const intervals: SoakInterval[] = [];
    let rssSamples: number[] = [];
    let lastHeap = 0;
    let lastHeapTotal = 0;
    let rssAfterWarmup = 0;
    let lastRequests = 0;
    let lastErrors = 0;
    const sampleMemory = async () => {
        const memory = await run.memory();
        rssSamples.push(memory.rss);
        lastHeap = memory.heapUsed;
        lastHeapTotal = memory.heapTotal;
    };
    const sampler = (async () => {
        await sampleMemory();
        for (let next = started + intervalMs; next <= end + 1; next += intervalMs) {
            while (performance.now() < next - MEMORY_SAMPLE_MS) {
                await new Promise((resolve) => setTimeout(resolve, MEMORY_SAMPLE_MS));
                await sampleMemory();
            }
            await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - performance.now())));
            await sampleMemory();
            const ttfts = run.ttfts;
            run.ttfts = [];
            const interval: SoakInterval = {
                atSeconds: Math.round((performance.now() - started) / 100) / 10,
                requests: run.requests - lastRequests,
                errors: run.errors - lastErrors,
                rssBytes: Math.round(rssSamples.reduce((sum, value) => sum + value, 0) / rssSamples.length),
                rssMaxBytes: Math.max(...rssSamples),
                heapUsedBytes: lastHeap,
                heapTotalBytes: lastHeapTotal,
                ttftP50Ms: Math.round(percentile(ttfts, 50) * 10) / 10,
                ttftP99Ms: Math.round(percentile(ttfts, 99) * 10) / 10
            };
            rssSamples = [];
            lastRequests = run.requests;
            lastErrors = run.errors;
            intervals.push(interval);
            // The first interval that starts after the warm-up is the baseline.
            if (rssAfterWarmup === 0 && interval.atSeconds * 1000 - intervalMs >= warmupMs - 1) rssAfterWarmup = interval.rssBytes;
            options.onInterval?.(interval);
        }
    })();

    await Promise.all(Array.from({length: clients}, (_, index) => client(index)));
    await sampler;
    const rssEnd = intervals.at(-1)?.rssBytes ?? 0;
    return {
        intervals,
        requests: run.requests,
        errors: run.errors,
        errorExamples: run.errorExamples,
        requestsByOperation: run.byOperation,
        rssAfterWarmupBytes: rssAfterWarmup,
        rssEndBytes: rssEnd,
        rssGrowth: rssAfterWarmup > 0 ? (rssEnd - rssAfterWarmup) / rssAfterWarmup : 0
    };
}
