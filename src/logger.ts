import pino, {type Logger} from "pino";

export type {Logger};

/**
 * Structured logs through pino: JSON lines when piped (for log collectors), one readable line
 * per event on a terminal via pino-pretty when it is installed.
 */
export function createLogger(level: string, options: {pretty?: boolean} = {}): Logger {
    const pretty = options.pretty ?? process.stderr.isTTY;
    if (pretty) {
        try {
            return pino({level, transport: {target: "pino-pretty", options: {destination: 2, translateTime: "HH:MM:ss.l", ignore: "pid,hostname"}}});
        } catch {
            // pino-pretty is a dev dependency; without it fall through to JSON lines.
        }
    }
    return pino({level}, pino.destination(2));
}
