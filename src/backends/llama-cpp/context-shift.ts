import type {ContextShiftOptions} from "node-llama-cpp";
import {slideRange, type SlidingWindow} from "../../kv/window.js";

/**
 * For generations without a sliding window. The runtime stops them before the context is full,
 * but the read-ahead decode of the token after the last one can still find the sequence full:
 * erasing the newest token then frees a cell without moving any position. (The default,
 * erasing after BOS, shifts every key: it threw away the cached prompt and, on a quantized K
 * cache, crashed the process.) That token's output is never used.
 */
export const NO_CONTEXT_SHIFT: ContextShiftOptions = {
    size: 1,
    strategy: ({sequence}) => [{start: sequence.nextTokenIndex - 1, end: sequence.nextTokenIndex}]
};

/**
 * node-llama-cpp calls the strategy when a decode finds the sequence full (it holds at most
 * contextSize - 1 tokens); the erased range is shifted out of the KV cache and later positions
 * move down (llama.cpp re-ropes the keys). Counts what it erased for the generation's report.
 */
export class SlidingWindowShift {
    private dropped = 0;
    readonly options: ContextShiftOptions;

    constructor(window: SlidingWindow) {
        this.options = {
            size: window.slideTokens,
            strategy: ({sequence, size}) => {
                const range = slideRange(sequence.nextTokenIndex, {sinkTokens: window.sinkTokens, slideTokens: size});
                this.dropped += range.end - range.start;
                return [range];
            }
        };
    }

    /** Tokens erased since the last call. */
    takeDropped(): number {
        const dropped = this.dropped;
        this.dropped = 0;
        return dropped;
    }
}
