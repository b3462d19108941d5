/**
 * Picks the CPU thread count for decoding. node-llama-cpp's default is max(cores, 4): on a
 * 2-core machine that oversubscribes the cores and spin-waiting threads make decode hundreds
 * of times slower. Small models are worse off with more than one thread at all: per token
 * there is so little work that waking and joining threads costs more than it saves
 * (stories260K here: 1 thread ~1,300 tok/s, 2 threads ~140 tok/s).
 */

/** Below this many bytes of weights per token, one thread decodes fastest. */
const SINGLE_THREAD_MAX_MODEL_BYTES = 64 * 1024 * 1024;

export interface ThreadChoice {
    threads: number;
    reason: string;
}

export function chooseThreads(options: {
    requested?: number;
    /** Cores that do math: physical cores, as llama.cpp counts them. */
    mathCores: number;
    modelSizeBytes: number;
    onGpu: boolean;
}): ThreadChoice {
    const {requested, mathCores, modelSizeBytes, onGpu} = options;
    if (requested != null && requested > 0)
        return {threads: requested, reason: "set by --threads / config"};

    const cores = Math.max(1, mathCores);
    if (onGpu)
        return {threads: Math.min(cores, 4), reason: `GPU offload: ${Math.min(cores, 4)} threads feed the GPU`};

    if (modelSizeBytes < SINGLE_THREAD_MAX_MODEL_BYTES)
        return {threads: 1, reason: "small model: thread synchronisation costs more than it saves"};

    return {threads: cores, reason: `one thread per physical core (${cores})`};
}
