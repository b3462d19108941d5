const encoder = new TextEncoder();

const SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no"
};

/**
 * An SSE response whose `data:` payloads come from `payloads`. Pull-based: the next payload is
 * produced only when the socket has taken the previous one, so a slow client slows its own
 * generation instead of buffering it. Ends with `data: [DONE]`. If the client goes away,
 * `payloads.return()` runs, which stops the generation behind it.
 */
export function sseResponse(payloads: AsyncGenerator<string, void, void>, signal: AbortSignal, status = 200): Response {
    const stop = () => void payloads.return().catch(() => {});
    signal.addEventListener("abort", stop, {once: true});
    const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
            try {
                const next = await payloads.next();
                if (next.done) {
                    controller.enqueue(encoder.encode("data: [DONE]\n\n"));
                    controller.close();
                    signal.removeEventListener("abort", stop);
                } else
                    controller.enqueue(encoder.encode(`data: ${next.value}\n\n`));
            } catch (error) {
                signal.removeEventListener("abort", stop);
                controller.error(error);
            }
        },
        cancel: stop
    }, {highWaterMark: 0});
    return new Response(body, {status, headers: SSE_HEADERS});
}
