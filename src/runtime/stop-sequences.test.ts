import {describe, expect, it} from "vitest";
import {StopSequenceScanner} from "./stop-sequences.js";

function run(scanner: StopSequenceScanner, pieces: string[]) {
    let out = "";
    for (const piece of pieces) {
        const {text, stopped} = scanner.push(piece);
        out += text;
        if (stopped) return {out, stopped};
    }
    return {out: out + scanner.finish(), stopped: false};
}

describe("StopSequenceScanner", () => {
    it("passes text through when there are no stops", () => {
        expect(run(new StopSequenceScanner([]), ["a", "b", "c"])).toEqual({out: "abc", stopped: false});
    });

    it("finds a stop string split over several pieces and emits nothing of it", () => {
        const scanner = new StopSequenceScanner(["END"]);
        expect(scanner.push("hello E")).toEqual({text: "hello ", stopped: false});
        expect(scanner.push("N")).toEqual({text: "", stopped: false});
        expect(scanner.push("D and more")).toEqual({text: "", stopped: true});
    });

    it("releases held text when the partial match breaks", () => {
        const scanner = new StopSequenceScanner(["END"]);
        expect(scanner.push("xE")).toEqual({text: "x", stopped: false});
        expect(scanner.push("Nx")).toEqual({text: "ENx", stopped: false});
    });

    it("stops at the earliest of several stop strings", () => {
        expect(run(new StopSequenceScanner(["world", "lo w"]), ["hel", "lo world"])).toEqual({out: "hel", stopped: true});
    });

    it("gives back held text at the end", () => {
        expect(run(new StopSequenceScanner(["ENDING"]), ["abc", "END"])).toEqual({out: "abcEND", stopped: false});
    });

    it("holds and finally drops trailing whitespace when asked", () => {
        const scanner = new StopSequenceScanner([], true);
        expect(scanner.push("{}\n ")).toEqual({text: "{}", stopped: false});
        expect(scanner.push("\n")).toEqual({text: "", stopped: false});
        expect(scanner.finish()).toBe("");
        expect(new StopSequenceScanner([], true).push("a \nb")).toEqual({text: "a \nb", stopped: false});
    });

    it("ignores empty stop strings", () => {
        expect(run(new StopSequenceScanner([""]), ["abc"])).toEqual({out: "abc", stopped: false});
    });
});
