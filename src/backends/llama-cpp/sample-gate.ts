import type {LlamaContext} from "node-llama-cpp";

/**
 * After a batch whose outputs llama.cpp produced out of batch order (sequences split into
 * micro-batches, prompts of different lengths), llama.cpp swaps the logit rows back lazily, on the
 * first read (`llama_context::output_reorder`, called by `llama_get_logits(_ith)`), without a
 * lock. node-llama-cpp samples each sequence of a batch in its own libuv pool job, so two
 * sequences' samplers could run that reorder at once: the swap ran twice or half-way and each
 * sequence read the other's logits — two streams' first tokens traded places (seen as 2 in 40
 * interleaved WebSocket pairs on stories260K with libuv's default pool of 4 threads; `serve` on
 * the CPU runs one pool thread and never raced). So the first sample after every decode runs
 * alone, and the others start once it has read (and reordered) the outputs.
 *
 * Hooks `decodeBatch` and `sampleToken` of node-llama-cpp 3.21.1's native context (`_ctx`);
 * returns false where they are missing.
 */
export function gateFirstSampleAfterDecode(context: LlamaContext): boolean {
    const native = (context as unknown as {_ctx?: Record<string, unknown>})._ctx;
    if (native == null || typeof native.decodeBatch !== "function" || typeof native.sampleToken !== "function") return false;
    const decodeBatch = (native.decodeBatch as (...args: unknown[]) => Promise<unknown>).bind(native);
    const sampleToken = (native.sampleToken as (...args: unknown[]) => Promise<unknown>).bind(native);
    /** A decode finished and no sample has read its outputs yet. */
    let unread = false;
    /** The sample reading them, until it is done. */
    let reading: Promise<unknown> | undefined;

    // The addon's methods are read-only on its prototype: own properties shadow them.
    Object.defineProperty(native, "decodeBatch", {
        configurable: true,
        value: async (...args: unknown[]) => {
            const result = await decodeBatch(...args);
            unread = true;
            return result;
        }
    });
    Object.defineProperty(native, "sampleToken", {
        configurable: true,
        value: (...args: unknown[]) => {
            if (unread) {
                unread = false;
                const first = sampleToken(...args);
                reading = first;
                const done = () => {
                    if (reading === first) reading = undefined;
                };
                first.then(done, done);
                return first;
            }
            if (reading != null) {
                const after = () => sampleToken(...args);
                return reading.then(after, after);
            }
            return sampleToken(...args);
        }
    });
    return true;
}
