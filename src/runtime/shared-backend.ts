import type {Backend, BackendModel, LoadModelOptions} from "../backends/backend.js";

/**
 * One backend (one llama.cpp instance, one thread pool) shared by the runtimes of several loaded
 * models. Each runtime gets a view: its `setMaxThreads` records what that runtime wants and the
 * backend gets the largest wish (node-llama-cpp splits that many threads among the contexts
 * decoding at the moment, so two busy models share the cores instead of oversubscribing them);
 * disposing a view forgets its wish and leaves the backend running.
 */
export class SharedBackend {
    private readonly wanted = new Map<object, number>();

    constructor(readonly backend: Backend) {}

    view(): Backend {
        const key = {};
        const shared = this;
        return {
            name: this.backend.name,
            async loadModel(options: LoadModelOptions): Promise<BackendModel> {
                try {
                    const model = await shared.backend.loadModel(options);
                    shared.wanted.set(key, model.description.threads);
                    return model;
                } finally {
                    // Loading sets the backend's count to the new model's; give the others theirs back.
                    shared.apply();
                }
            },
            setMaxThreads(threads: number) {
                shared.wanted.set(key, threads);
                shared.apply();
            },
            async dispose() {
                shared.wanted.delete(key);
                shared.apply();
            }
        };
    }

    dispose() {
        return this.backend.dispose();
    }

    private apply() {
        if (this.wanted.size > 0)
            this.backend.setMaxThreads?.(Math.max(...this.wanted.values()));
    }
}
