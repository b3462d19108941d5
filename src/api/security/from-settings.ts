import type {Settings} from "../../config/schema.js";
import {AccessControl} from "./access.js";
import {loadApiKeys} from "./api-keys.js";
import {assertSafeExposure} from "./exposure.js";
import {RateLimiter} from "./rate-limit.js";

/**
 * The server's access rules from its settings: keys (settings + key file), rate limit, CORS
 * origins. Throws when the key file cannot be read, or when the server would listen beyond
 * this machine without keys and without `insecurePublic`.
 */
export async function accessFromSettings(settings: Settings): Promise<AccessControl> {
    const apiKeys = await loadApiKeys({keys: settings.apiKeys, file: settings.apiKeyFile});
    assertSafeExposure({host: settings.host, requiresKey: apiKeys.size > 0, insecurePublic: settings.insecurePublic});
    return new AccessControl({
        apiKeys,
        corsOrigins: settings.corsOrigins,
        rateLimiter: settings.rateLimitPerMinute == null ? undefined : new RateLimiter({requestsPerMinute: settings.rateLimitPerMinute, burst: settings.rateLimitBurst})
    });
}
