import type {EngineLimits} from "../runtime/runtime.js";
import type {PowerLevel, PowerReading} from "./types.js";

/** What transports show about power: the level, why, the last reading and the active limits. */
export interface PowerStatus {
    level: PowerLevel;
    /** The signal that decided the level, in words. */
    reason: string;
    /** Unix ms when the level was entered. */
    since: number;
    reading?: PowerReading;
    limits: EngineLimits;
    /** A level forced by config or the admin endpoint, if any. */
    override: PowerLevel | null;
    /** Cost of the last sensor poll and the average, in ms. */
    pollMs?: {last: number; average: number};
}

/** The power governor as the API and the CLI see it. */
export interface PowerView {
    status(): PowerStatus;
    /** Called on every level change; returns the unsubscribe function. */
    subscribe(listener: (status: PowerStatus) => void): () => void;
    setOverride(level: PowerLevel | null): void;
}
