import {createHash, timingSafeEqual} from "node:crypto";
import {readFile} from "node:fs/promises";

/**
 * The API keys clients may present. Only SHA-256 digests are kept; every check compares the
 * given key's digest with each one in constant time (no early exit), so neither a key's content
 * nor its length leaks through timing.
 */
export class ApiKeySet {
    private readonly digests: Buffer[];

    constructor(keys: readonly string[]) {
        this.digests = [...new Set(keys.map((key) => key.trim()).filter((key) => key.length > 0))].map(digest);
    }

    get size() {
        return this.digests.length;
    }

    /** True when `given` is one of the keys. */
    matches(given: string | undefined): boolean {
        if (given == null || given.length === 0) return false;
        const candidate = digest(given);
        let found = false;
        for (const expected of this.digests)
            found = timingSafeEqual(candidate, expected) || found;
        return found;
    }

    /** A stable, non-secret name for a key (rate-limit buckets, logs): the first 12 hex digits of its digest. */
    static label(key: string) {
        return `key:${digest(key).toString("hex").slice(0, 12)}`;
    }
}

function digest(value: string) {
    return createHash("sha256").update(value, "utf8").digest();
}

export interface ApiKeySources {
    /** Keys from the settings (config file or `EDGE_LLM_API_KEYS`, a comma-separated list). */
    keys?: readonly string[];
    /** A file of keys, one per line; blank lines and lines starting with `#` are skipped. */
    file?: string;
}

/** Collects the keys of every source; an unreadable key file is an error (never "no keys"). */
export async function loadApiKeys({keys = [], file}: ApiKeySources): Promise<ApiKeySet> {
    const all = [...keys];
    if (file != null) {
        let text: string;
        try {
            text = await readFile(file, "utf8");
        } catch (error) {
            throw new Error(`Cannot read the API key file ${file}: ${(error as Error).message}`);
        }
        const fromFile = parseKeyFile(text);
        if (fromFile.length === 0)
            throw new Error(`The API key file ${file} holds no keys (one key per line).`);
        all.push(...fromFile);
    }
    return new ApiKeySet(all);
}

export function parseKeyFile(text: string): string[] {
    return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0 && !line.startsWith("#"));
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string | undefined {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    return match?.[1];
}
