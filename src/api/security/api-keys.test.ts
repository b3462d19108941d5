import {mkdtemp, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, expect, it} from "vitest";
import {ApiKeySet, bearerToken, loadApiKeys} from "./api-keys.js";
import {assertSafeExposure, isLoopbackHost} from "./exposure.js";

describe("API keys", () => {
    it("matches only the configured keys", () => {
        const keys = new ApiKeySet(["alpha-key", " beta-key ", ""]);
        expect(keys.size).toBe(2);
        expect(keys.matches("alpha-key")).toBe(true);
        expect(keys.matches("beta-key")).toBe(true);
        expect(keys.matches("alpha-ke")).toBe(false);
        expect(keys.matches("alpha-key ")).toBe(false);
        expect(keys.matches("")).toBe(false);
        expect(keys.matches(undefined)).toBe(false);
    });

    it("reads a key file (one per line, # comments) together with the listed keys", async () => {
        const dir = await mkdtemp(path.join(os.tmpdir(), "edge-llm-keys-"));
        const file = path.join(dir, "keys.txt");
        await writeFile(file, "# team keys\nfile-key-1\r\n\n  file-key-2  \n");
        const keys = await loadApiKeys({keys: ["env-key"], file});
        expect(keys.size).toBe(3);
        expect(["env-key", "file-key-1", "file-key-2"].every((key) => keys.matches(key))).toBe(true);
        await expect(loadApiKeys({file: path.join(dir, "missing.txt")})).rejects.toThrow(/Cannot read the API key file/);
        await writeFile(file, "# nothing\n\n");
        await expect(loadApiKeys({file})).rejects.toThrow(/holds no keys/);
    });

    it("reads the bearer token of an Authorization header", () => {
        expect(bearerToken("Bearer abc")).toBe("abc");
        expect(bearerToken("bearer  abc ")).toBe("abc");
        expect(bearerToken("Basic abc")).toBeUndefined();
        expect(bearerToken(undefined)).toBeUndefined();
    });

    it("labels keys without revealing them", () => {
        expect(ApiKeySet.label("secret")).toMatch(/^key:[0-9a-f]{12}$/);
        expect(ApiKeySet.label("secret")).not.toContain("secret");
    });
});

describe("exposure", () => {
    it("knows loopback addresses", () => {
        for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "::ffff:127.0.0.1"])
            expect(isLoopbackHost(host), host).toBe(true);
        for (const host of ["0.0.0.0", "::", "192.168.1.2", "example.com", "10.0.0.1"])
            expect(isLoopbackHost(host), host).toBe(false);
    });

    it("refuses a public address without keys unless told to accept the risk", () => {
        expect(() => assertSafeExposure({host: "0.0.0.0", requiresKey: false, insecurePublic: false})).toThrow(/--insecure-public/);
        expect(() => assertSafeExposure({host: "0.0.0.0", requiresKey: true, insecurePublic: false})).not.toThrow();
        expect(() => assertSafeExposure({host: "0.0.0.0", requiresKey: false, insecurePublic: true})).not.toThrow();
        expect(() => assertSafeExposure({host: "127.0.0.1", requiresKey: false, insecurePublic: false})).not.toThrow();
    });
});
