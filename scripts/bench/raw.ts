import {CPU_BATCH_SIZE} from "../../src/backends/llama-cpp/batch-size.js";
import {getLlama, type LlamaContext, type LlamaModel, type Token} from "node-llama-cpp";
import type {DecodeJob, DecodeSample} from "./clients.js";

/** node-llama-cpp used directly, the way an app would without edge-llm: the baseline. */
export class RawDecoder {
    private constructor(private readonly model: LlamaModel, private readonly context: LlamaContext) {}

    /** `flashAttention` undefined: node-llama-cpp's default ("auto", on for this CPU). */
    static async create(modelPath: string, threads: number, contextSize: number, flashAttention?: boolean) {
        const llama = await getLlama({gpu: false, build: "never", maxThreads: threads, logLevel: "error" as never});
        const model = await llama.loadModel({modelPath});
        const context = await model.createContext({contextSize, sequences: 1, batchSize: CPU_BATCH_SIZE, threads: {ideal: threads, min: 1}, flashAttention});
        return new RawDecoder(model, context);
    }

    countTokens(text: string): number {
        return this.model.tokenize(text).length + (this.model.tokens.bos != null ? 1 : 0);
    }

    async decode(job: DecodeJob): Promise<DecodeSample> {
        const sequence = this.context.getSequence();
        try {
            const start = performance.now();
            const tokens = this.model.tokenize(job.prompt);
            if (this.model.tokens.bos != null) tokens.unshift(this.model.tokens.bos);
            let first = 0;
            let count = 0;
            for await (const token of sequence.evaluate(tokens as Token[], {temperature: 0})) {
                // Detokenize as any real consumer must.
                this.model.detokenize([token]);
                if (count++ === 0) first = performance.now();
                if (count >= job.maxTokens) break;
            }
            const last = performance.now();
            return {tokens: count, ttftMs: first - start, tokensPerSecond: (count - 1) / ((last - first) / 1000)};
        } finally {
            sequence.dispose();
        }
    }

    async dispose() {
        await this.context.dispose();
        await this.model.dispose();
    }
}
