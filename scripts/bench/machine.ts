import {readFileSync} from "node:fs";
import os from "node:os";

/**
 * The CPU as a bench report names it. On Linux it adds the family, model and widest vector
 * instructions from /proc/cpuinfo: this project's VMs all say "AMD EPYC", with and without
 * AVX-512, and without it the 1B-shaped Q4_0 model decodes at about half the rate.
 */
export function describeCpu(): string {
    const cpuinfo = readCpuinfo();
    const name = os.cpus()[0]?.model.trim() || "unknown";
    if (cpuinfo == null) return name;
    const field = (key: string) => new RegExp(`^${key}\\s*:\\s*(.*)$`, "m").exec(cpuinfo)?.[1]?.trim();
    const flags = new Set((field("flags") ?? field("Features") ?? "").split(/\s+/));
    const vectors = flags.has("avx512f") ? "AVX-512" : flags.has("avx2") ? "AVX2, no AVX-512" : flags.has("asimd") ? "NEON" : undefined;
    const family = field("cpu family");
    const model = field("model");
    const details = [family != null && model != null ? `family ${family} model ${model}` : undefined, vectors].filter((part) => part != null);
    return details.length === 0 ? name : `${name} (${details.join("; ")})`;
}

function readCpuinfo(): string | undefined {
    try {
        return readFileSync("/proc/cpuinfo", "utf8");
    } catch {
        return undefined;
    }
}
