import {Counter, Gauge, Registry, collectDefaultMetrics} from "prom-client";
import type {ModelHost} from "../runtime/model-pool.js";
import type {PowerView} from "../power/status.js";
import {POWER_LEVELS} from "../power/types.js";

/**
 * Prometheus metrics (prom-client). Engine figures are read from the runtime at scrape time,
 * so the per-token path never touches a metric.
 */
export function createMetrics(runtime: Pick<ModelHost, "health">, power?: PowerView) {
    const registry = new Registry();
    collectDefaultMetrics({register: registry, prefix: "edge_llm_"});

    const gauge = (name: string, help: string, read: () => number | undefined, labelNames: string[] = []) =>
        new Gauge({name, help, registers: [registry], labelNames, collect() {
            const value = read();
            if (value != null) this.set(value);
        }});
    const counter = (name: string, help: string, read: () => number | undefined) =>
        new Counter({name, help, registers: [registry], collect() {
            const value = read();
            if (value != null) {
                this.reset();
                this.inc(value);
            }
        }});

    // One snapshot per scrape: every gauge below reads it instead of recomputing the runtime's state.
    let snapshot: {health?: ReturnType<ModelHost["health"]>; power?: ReturnType<PowerView["status"]>} = {};
    const health = () => (snapshot.health ??= runtime.health());
    gauge("edge_llm_ready", "1 when a model is loaded and serving", () => (health().status === "ready" ? 1 : 0));
    gauge("edge_llm_slots_total", "Sequences decoded side by side", () => health().slots?.total);
    gauge("edge_llm_slots_running", "Sequences running a request", () => health().slots?.running);
    gauge("edge_llm_requests_queued", "Requests waiting for a sequence", () => health().slots?.queued);

    new Gauge({name: "edge_llm_kv_blocks", help: "KV cache blocks by state (used by running requests, cached by idle sequences, free)", labelNames: ["state"], registers: [registry], collect() {
        const blocks = health().kv?.blocks;
        if (blocks == null) return;
        this.set({state: "used"}, blocks.used);
        this.set({state: "cached"}, blocks.cached);
        this.set({state: "free"}, blocks.free);
    }});
    gauge("edge_llm_kv_block_size_tokens", "Tokens per KV block", () => health().kv?.blocks.blockSize);
    counter("edge_llm_kv_requests_total", "Requests placed on a sequence", () => health().kv?.requests);
    counter("edge_llm_kv_prefix_hits_total", "Requests that reused at least one cached block of their prompt", () => health().kv?.prefixHits);
    counter("edge_llm_prompt_tokens_total", "Prompt tokens of placed requests", () => health().kv?.promptTokens);
    counter("edge_llm_kv_reused_prompt_tokens_total", "Prompt tokens served from cached KV instead of prefill", () => health().kv?.reusedPromptTokens);
    counter("edge_llm_kv_evictions_total", "Idle sequences whose cache was dropped or spilled for another prompt", () => health().kv?.evictions);
    counter("edge_llm_kv_spills_total", "Sequence states written to disk", () => health().kv?.spills);
    counter("edge_llm_kv_restores_total", "Sequence states loaded back from disk", () => health().kv?.restores);
    counter("edge_llm_kv_rejected_states_total", "State files refused (damaged or from another model)", () => health().kv?.rejectedStates);
    counter("edge_llm_speculative_drafted_tokens_total", "Draft tokens verified by speculative decoding", () => health().speculation.drafted);
    counter("edge_llm_speculative_accepted_tokens_total", "Draft tokens the target model kept", () => health().speculation.accepted);
    gauge("edge_llm_speculative_acceptance_rate", "Accepted / drafted since start (0 before any draft)", () => {
        const {drafted, accepted} = health().speculation;
        return drafted === 0 ? 0 : accepted / drafted;
    });
    gauge("edge_llm_kv_spilled_states", "Sequence states on disk", () => health().kv?.spilledStates);
    gauge("edge_llm_kv_spilled_bytes", "Bytes of sequence states on disk", () => health().kv?.spilledBytes);
    gauge("edge_llm_models_loaded", "Models loaded (or loading) now", () => health().models.length);
    counter("edge_llm_model_loads_total", "Models loaded on demand or at start", () => health().modelLoads.loads);
    counter("edge_llm_model_unloads_total", "Models unloaded (idle TTL or to make room)", () => health().modelLoads.unloads);
    counter("edge_llm_model_load_failures_total", "Model loads that failed", () => health().modelLoads.failures);

    if (power != null) {
        const status = () => (snapshot.power ??= power.status());
        gauge("edge_llm_power_level", "Power level: 0 nominal, 1 fair, 2 serious, 3 critical", () => POWER_LEVELS.indexOf(status().level));
        gauge("edge_llm_power_max_temperature_celsius", "Hottest thermal zone in the last reading", () => {
            const zones = status().reading?.thermalZones ?? [];
            return zones.length === 0 ? undefined : Math.max(...zones.map((zone) => zone.celsius));
        });
        gauge("edge_llm_power_battery_percent", "Battery charge in the last reading", () => status().reading?.battery?.percent);
        gauge("edge_llm_power_on_battery", "1 while discharging", () => {
            const battery = status().reading?.battery;
            return battery == null ? undefined : battery.discharging ? 1 : 0;
        });
        gauge("edge_llm_power_poll_seconds", "Cost of the last sensor poll", () => {
            const poll = status().pollMs;
            return poll == null ? undefined : poll.last / 1000;
        });
        gauge("edge_llm_limit_tokens_per_second", "Per-stream pacing cap (0 = none)", () => status().limits.tokensPerSecond ?? 0);
        gauge("edge_llm_limit_threads", "Decode threads allowed (0 = the model's own)", () => status().limits.threads ?? 0);
        gauge("edge_llm_limit_max_concurrent", "Requests decoded at once (0 = all sequences)", () => status().limits.maxConcurrent ?? 0);
        gauge("edge_llm_limit_refusing", "1 while new requests are refused", () => (status().limits.refuse != null ? 1 : 0));
    }

    return {
        contentType: registry.contentType,
        render: () => {
            snapshot = {};
            return registry.metrics();
        }
    };
}
