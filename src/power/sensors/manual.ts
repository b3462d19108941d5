import {POWER_LEVELS, type PowerLevel, type PowerReading, type PowerSensor} from "../types.js";

/**
 * An operator's override (CLI flag, admin endpoint, tests): while a level is set, every reading
 * carries it as `forcedLevel`; cleared, the sensor reads nothing.
 */
export class ManualSensor implements PowerSensor {
    readonly name = "manual";
    private level: PowerLevel | null;

    constructor(level: PowerLevel | null = null) {
        this.level = checked(level);
    }

    /** Forces `level`, or clears the override with `null`. Throws on a name that is not a level. */
    set(level: PowerLevel | null) {
        this.level = checked(level);
    }

    get(): PowerLevel | null {
        return this.level;
    }

    async read(): Promise<PowerReading | undefined> {
        return this.level == null ? undefined : {at: Date.now(), source: this.name, forcedLevel: this.level};
    }
}

function checked(level: PowerLevel | null) {
    if (level != null && !POWER_LEVELS.includes(level))
        throw new RangeError(`Unknown power level "${String(level)}"; expected one of ${POWER_LEVELS.join(", ")}`);
    return level;
}
