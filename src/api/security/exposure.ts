import {isIP} from "node:net";

/** Loopback names and addresses: only this machine can connect. */
export function isLoopbackHost(host: string): boolean {
    const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
    if (bare === "localhost" || bare.endsWith(".localhost")) return true;
    if (isIP(bare) === 4) return bare.startsWith("127.");
    if (isIP(bare) === 6) return bare === "::1" || /^::ffff:127\./.test(bare);
    return false;
}

/**
 * Refuses to listen beyond this machine without API keys: anyone on the network could use the
 * model (and its CPU, battery and memory) otherwise. `insecurePublic` is the explicit opt-out.
 */
export function assertSafeExposure({host, requiresKey, insecurePublic}: {host: string; requiresKey: boolean; insecurePublic: boolean}) {
    if (isLoopbackHost(host) || requiresKey || insecurePublic) return;
    throw new Error(
        `Refusing to listen on ${host} without an API key: every machine that can reach it could use the server. ` +
        `Set API keys (apiKeys in the config, EDGE_LLM_API_KEYS=key1,key2 or --api-key-file <file>), ` +
        `listen on 127.0.0.1, or pass --insecure-public to accept the risk.`
    );
}
