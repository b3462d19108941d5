import {describe, expect, it} from "vitest";
import {decideMemoryFit} from "./memory-fit.js";

const MB = 1_000_000;
/** 1 MB per 256 tokens per sequence, plus 10 MB of buffers. */
const linear = (sequences: number) => (contextSize: number) => 10 * MB + sequences * contextSize / 256 * MB;

describe("decideMemoryFit", () => {
    it("fits as asked when weights plus context are within free memory", () => {
        expect(decideMemoryFit({modelBytes: 500 * MB, contextBytes: linear(4), contextSize: 2048, sequences: 4, freeBytes: 543 * MB, policy: "error"}))
            .toEqual({action: "fit", contextSize: 2048, modelBytes: 500 * MB, contextBytes: 42 * MB, freeBytes: 543 * MB});
    });

    it("refuses under \"error\" with the model, context and free bytes", () => {
        const decision = decideMemoryFit({
            modelBytes: 500 * MB, contextBytes: linear(4), contextSize: 2048, sequences: 4, freeBytes: 520 * MB, policy: "error",
            modelName: "m.gguf", memoryName: "RAM"
        });
        expect(decision.action).toBe("refuse");
        if (decision.action !== "refuse") return;
        expect(decision.message).toContain("m.gguf needs 500 MB for its weights and 42 MB for 4 × 2048 tokens of context");
        expect(decision.message).toContain("542 MB in all, but only 520 MB of RAM is free");
    });

    it("shrinks to the largest multiple of 256 that fits under \"shrink\"", () => {
        // 520 MB free: 10 MB left for context after buffers → 4 sequences × 640 tokens; 512 is the largest step.
        const decision = decideMemoryFit({modelBytes: 500 * MB, contextBytes: linear(4), contextSize: 2048, sequences: 4, freeBytes: 520 * MB, policy: "shrink"});
        expect(decision).toMatchObject({action: "shrink", contextSize: 512, requestedContextSize: 2048, contextBytes: 18 * MB});
        if (decision.action === "shrink") expect(decision.message).toMatch(/Context lowered from 2048 to 512 tokens per sequence/);
    });

    it("refuses even under \"shrink\" when the weights leave no room for the smallest context", () => {
        const decision = decideMemoryFit({modelBytes: 500 * MB, contextBytes: linear(4), contextSize: 2048, sequences: 4, freeBytes: 505 * MB, policy: "shrink"});
        expect(decision.action).toBe("refuse");
        if (decision.action === "refuse") expect(decision.message).toContain("even 4 × 256 tokens of context");
    });

    it("keeps a requested context smaller than the minimum step when it fits", () => {
        expect(decideMemoryFit({modelBytes: 0, contextBytes: linear(1), contextSize: 128, sequences: 1, freeBytes: 11 * MB, policy: "shrink"}))
            .toMatchObject({action: "fit", contextSize: 128});
    });
});
