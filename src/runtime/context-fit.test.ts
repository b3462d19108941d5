import {describe, expect, it} from "vitest";
import {fitToContext} from "./context-fit.js";
import {ContextLengthExceededError, InvalidRequestError} from "./errors.js";

const prompt = (length: number, systemTokens?: number) => ({
    tokens: Array.from({length}, (_, index) => index),
    stopStrings: [],
    systemTokens
});
const request = {contextSize: 512, param: "prompt"};

describe("fitToContext", () => {
    it("error: rejects a prompt with no room, bounds generation by the room left", () => {
        expect(() => fitToContext(prompt(512), request)).toThrow(ContextLengthExceededError);
        const fit = fitToContext(prompt(500), request);
        expect(fit).toMatchObject({tokenLimit: 12, truncatedPromptTokens: 0});
        expect(fit.window).toBeUndefined();
        expect(fitToContext(prompt(10), {...request, maxTokens: 5}).tokenLimit).toBe(5);
    });

    it("never changes a prompt that fits", () => {
        for (const policy of ["truncate", "slide"] as const) {
            const fit = fitToContext(prompt(511), {...request, policy});
            expect(fit.prompt.tokens).toHaveLength(511);
            expect(fit.truncatedPromptTokens).toBe(0);
        }
    });

    it("truncate: keeps the sinks and the newest tokens, leaving min(max_tokens, context/4)", () => {
        const fit = fitToContext(prompt(2000), {...request, policy: "truncate", maxTokens: 40});
        expect(fit.prompt.tokens).toHaveLength(472);
        expect(fit.prompt.tokens.slice(0, 4)).toEqual([0, 1, 2, 3]);
        expect(fit.prompt.tokens.at(4)).toBe(2000 - 468);
        expect(fit.prompt.tokens.at(-1)).toBe(1999);
        expect(fit).toMatchObject({truncatedPromptTokens: 1528, tokenLimit: 40, window: undefined});
        expect(fitToContext(prompt(2000), {...request, policy: "truncate"}).tokenLimit).toBe(128);
    });

    it("uses the system prompt as sinks unless the settings name a count", () => {
        const bySystem = fitToContext(prompt(2000, 30), {...request, policy: "truncate"});
        expect(bySystem.prompt.tokens.slice(0, 31)).toEqual([...Array.from({length: 30}, (_, index) => index), 2000 - 354]);
        const forced = fitToContext(prompt(2000, 30), {...request, policy: "slide"}, {sinkTokens: 8, slideTokens: 64});
        expect(forced.window).toEqual({sinkTokens: 8, slideTokens: 64});
    });

    it("slide: max_tokens bounds generation, one context's worth without it", () => {
        expect(fitToContext(prompt(10), {...request, policy: "slide", maxTokens: 10_000}).tokenLimit).toBe(10_000);
        expect(fitToContext(prompt(10), {...request, policy: "slide"}).tokenLimit).toBe(512);
        expect(fitToContext(prompt(10), {...request, policy: "slide"}).window).toEqual({sinkTokens: 4, slideTokens: 128});
    });

    it("the request's policy wins over the server's; slide needs a shiftable cache", () => {
        expect(() => fitToContext(prompt(600), {...request, policy: "error"}, {policy: "truncate"})).toThrow(ContextLengthExceededError);
        expect(fitToContext(prompt(600), request, {policy: "truncate"}).prompt.tokens).toHaveLength(384);
        expect(() => fitToContext(prompt(10), {...request, policy: "slide", canShiftContext: false})).toThrow(InvalidRequestError);
    });
});
