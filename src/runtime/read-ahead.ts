/**
 * Iterates `source` one item ahead: the next item is requested before the current one is handed
 * out. For a token stream this starts decoding token n+1 (native, on its own thread) while
 * JavaScript detokenizes, formats and writes token n, instead of after it. Stopping early costs
 * at most one extra decoded token.
 */
export async function* readAhead<T>(source: AsyncGenerator<T, void, void>): AsyncGenerator<T, void, void> {
    try {
        let pending = source.next();
        while (true) {
            const result = await pending;
            if (result.done)
                return;
            pending = source.next();
            // The prefetch may fail after the consumer has stopped; that failure is nobody's business.
            pending.catch(() => {});
            yield result.value;
        }
    } finally {
        await source.return();
    }
}
