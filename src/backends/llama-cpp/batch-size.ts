/**
 * Tokens per llama.cpp batch (node-llama-cpp's `batchSize`, also the micro-batch). llama.cpp's
 * compute buffer is sized for it and becomes resident with the first long prompt: 64.5 MiB at
 * node-llama-cpp's default of 512 on the 1B-shaped model, 16 MiB at 128. On the CPU prefill runs
 * at the same speed either way (1B: 117–131 tok/s for both, 402-token prompts; stories260K no
 * slower), so a CPU context takes 128; GPUs want large batches and keep the default.
 */
export const CPU_BATCH_SIZE = 128;

export function contextBatchSize(onGpu: boolean): number | undefined {
    return onGpu ? undefined : CPU_BATCH_SIZE;
}
