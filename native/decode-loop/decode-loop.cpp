// edge-llm's native decode loop: decode one token, sample the next, hand it to JavaScript, repeat,
// all on one libuv pool thread without a round trip through JavaScript per token.
//
// node-llama-cpp 3.21.1 makes two async hops per generated token (decodeBatch, then sampleToken);
// on a small model each hop costs more than llama_decode itself (docs/performance.md §3). This
// addon works on the llama_context that node-llama-cpp already created: it reads the context
// pointer out of node-llama-cpp's AddonContext (its header, compiled in, gives the layout) and
// calls the very libllama that addon loaded (found with dladdr from the object's vtable), so
// both see the same KV cache. The JavaScript side (src/backends/llama-cpp/native-loop/) holds
// node-llama-cpp's context and sequence locks while a loop runs and updates the sequence's
// token bookkeeping afterwards.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include <dlfcn.h>

#include "AddonContext.h"
#include "llama.h"
#include "node_api.h"

namespace {

struct LlamaApi {
    decltype(&llama_decode) decode;
    decltype(&llama_batch_init) batch_init;
    decltype(&llama_batch_free) batch_free;
    decltype(&llama_get_model) get_model;
    decltype(&llama_model_get_vocab) model_get_vocab;
    decltype(&llama_vocab_is_eog) vocab_is_eog;
    decltype(&llama_vocab_n_tokens) vocab_n_tokens;
    decltype(&llama_get_memory) get_memory;
    decltype(&llama_memory_seq_rm) memory_seq_rm;
    decltype(&llama_memory_seq_pos_max) memory_seq_pos_max;
    decltype(&llama_n_ctx_seq) n_ctx_seq;
    decltype(&llama_n_seq_max) n_seq_max;
    decltype(&llama_n_batch) n_batch;
    decltype(&llama_sampler_chain_default_params) chain_default_params;
    decltype(&llama_sampler_chain_init) chain_init;
    decltype(&llama_sampler_chain_add) chain_add;
    decltype(&llama_sampler_init_greedy) init_greedy;
    decltype(&llama_sampler_init_dist) init_dist;
    decltype(&llama_sampler_init_top_k) init_top_k;
    decltype(&llama_sampler_init_top_p) init_top_p;
    decltype(&llama_sampler_init_min_p) init_min_p;
    decltype(&llama_sampler_init_temp) init_temp;
    decltype(&llama_sampler_sample) sampler_sample;
    decltype(&llama_sampler_free) sampler_free;
};

template <typename T>
bool resolve(void* library, const char* name, T& into, std::string& missing) {
    into = reinterpret_cast<T>(dlsym(library, name));
    if (into == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
    return into != nullptr;
}

// Resolves every function through the addon file that created the context, so the calls reach the
// libllama instance it loaded (a prebuilt or a local build; Node loads addons RTLD_LOCAL, so the
// global namespace has none of them).
bool resolveApi(const void* addressInAddon, LlamaApi& api, std::string& error) {
    Dl_info info{};
    if (dladdr(addressInAddon, &info) == 0 || info.dli_fname == nullptr) {
        error = "cannot tell which file node-llama-cpp's addon was loaded from";
        return false;
    }
    void* library = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
    if (library == nullptr) {
        error = std::string("cannot reopen ") + info.dli_fname;
        return false;
    }
    std::string missing;
    resolve(library, "llama_decode", api.decode, missing);
    resolve(library, "llama_batch_init", api.batch_init, missing);
    resolve(library, "llama_batch_free", api.batch_free, missing);
    resolve(library, "llama_get_model", api.get_model, missing);
    resolve(library, "llama_model_get_vocab", api.model_get_vocab, missing);
    resolve(library, "llama_vocab_is_eog", api.vocab_is_eog, missing);
    resolve(library, "llama_vocab_n_tokens", api.vocab_n_tokens, missing);
    resolve(library, "llama_get_memory", api.get_memory, missing);
    resolve(library, "llama_memory_seq_rm", api.memory_seq_rm, missing);
    resolve(library, "llama_memory_seq_pos_max", api.memory_seq_pos_max, missing);
    resolve(library, "llama_n_ctx_seq", api.n_ctx_seq, missing);
    resolve(library, "llama_n_seq_max", api.n_seq_max, missing);
    resolve(library, "llama_n_batch", api.n_batch, missing);
    resolve(library, "llama_sampler_chain_default_params", api.chain_default_params, missing);
    resolve(library, "llama_sampler_chain_init", api.chain_init, missing);
    resolve(library, "llama_sampler_chain_add", api.chain_add, missing);
    resolve(library, "llama_sampler_init_greedy", api.init_greedy, missing);
    resolve(library, "llama_sampler_init_dist", api.init_dist, missing);
    resolve(library, "llama_sampler_init_top_k", api.init_top_k, missing);
    resolve(library, "llama_sampler_init_top_p", api.init_top_p, missing);
    resolve(library, "llama_sampler_init_min_p", api.init_min_p, missing);
    resolve(library, "llama_sampler_init_temp", api.init_temp, missing);
    resolve(library, "llama_sampler_sample", api.sampler_sample, missing);
    resolve(library, "llama_sampler_free", api.sampler_free, missing);
    // The handle stays open: the functions must outlive this call (node-llama-cpp keeps it loaded anyway).
    if (!missing.empty()) {
        error = std::string(info.dli_fname) + " lacks " + missing;
        return false;
    }
    return true;
}

enum class StopReason { None, Requested, Limit, EndOfGeneration, ContextFull, Backpressure, Slice, Error };

const char* reasonName(StopReason reason) {
    switch (reason) {
        case StopReason::Requested: return "stopped";
        case StopReason::Limit: return "limit";
        case StopReason::EndOfGeneration: return "eog";
        case StopReason::ContextFull: return "context-full";
        case StopReason::Backpressure: return "backpressure";
        case StopReason::Slice: return "slice";
        case StopReason::Error: return "error";
        default: return "none";
    }
}

struct Loop;

// Sampled tokens on their way to JavaScript. One per run, owned by the run's thread-safe function
// and freed when that is finalized: a wake-up still queued from an earlier run must not hand this
// run's tokens to the earlier run's callback (a stream then waited for ever for tokens it never got).
struct Outbox {
    std::mutex mutex;
    std::vector<llama_token> tokens;
};

struct Run {
    Loop* loop = nullptr;
    napi_ref handle = nullptr;  // keeps the loop alive until Complete
    napi_async_work work = nullptr;
    napi_deferred deferred = nullptr;
    napi_threadsafe_function onToken = nullptr;
    Outbox* outbox = nullptr;
    llama_seq_id sequence = 0;
    llama_pos position = 0;
    // Decoded first, in one batch (a prompt, or the one token sampled last); only the last one's logits are kept.
    std::vector<llama_token> input;
    int32_t limit = 0;
    int32_t unconsumedLimit = 0;
    double sliceMs = 0;
    double signalIntervalMs = 0;
    // Results, written on the pool thread, read in Complete.
    int32_t emitted = 0;
    StopReason reason = StopReason::None;
    std::string error;
};

struct Loop {
    LlamaApi api{};
    llama_context* context = nullptr;
    const llama_vocab* vocab = nullptr;
    llama_batch batch{};
    // The context's batch size: the most input tokens one run takes.
    int32_t batchCapacity = 1;
    llama_sampler* sampler = nullptr;
    bool running = false;
    std::atomic<bool> stopRequested{false};
    // Tokens handed to JavaScript that it has not taken yet; the loop pauses above the run's limit.
    std::atomic<int32_t> unconsumed{0};
};

napi_value throwError(napi_env env, const std::string& message) {
    napi_throw_error(env, nullptr, message.c_str());
    return nullptr;
}

#define CHECK(call) do { if ((call) != napi_ok) return throwError(env, "N-API call failed: " #call); } while (0)

Loop* loopOf(napi_env env, napi_value value) {
    void* data = nullptr;
    if (napi_get_value_external(env, value, &data) != napi_ok || data == nullptr) {
        throwError(env, "expected a decode loop handle");
        return nullptr;
    }
    return static_cast<Loop*>(data);
}

double numberProperty(napi_env env, napi_value object, const char* name, double fallback) {
    bool has = false;
    if (napi_has_named_property(env, object, name, &has) != napi_ok || !has) return fallback;
    napi_value value;
    double number;
    if (napi_get_named_property(env, object, name, &value) != napi_ok) return fallback;
    napi_valuetype type;
    napi_typeof(env, value, &type);
    if (type != napi_number || napi_get_value_double(env, value, &number) != napi_ok) return fallback;
    return number;
}

// The run's `input`: an array of token ids.
bool readInput(napi_env env, napi_value params, std::vector<llama_token>& into) {
    napi_value value;
    bool isArray = false;
    uint32_t length = 0;
    if (napi_get_named_property(env, params, "input", &value) != napi_ok || napi_is_array(env, value, &isArray) != napi_ok || !isArray ||
        napi_get_array_length(env, value, &length) != napi_ok)
        return false;
    into.resize(length);
    for (uint32_t index = 0; index < length; index++) {
        napi_value element;
        int32_t token;
        if (napi_get_element(env, value, index, &element) != napi_ok || napi_get_value_int32(env, element, &token) != napi_ok) return false;
        into[index] = token;
    }
    return true;
}

void finalizeLoop(napi_env, void* data, void*) {
    auto* loop = static_cast<Loop*>(data);
    // Collected only after its last run completed: a run holds a reference to the handle.
    if (loop->sampler != nullptr) loop->api.sampler_free(loop->sampler);
    loop->api.batch_free(loop->batch);
    delete loop;
}

// attach(addonContext) -> handle. addonContext is node-llama-cpp's native context object (`context._ctx`).
napi_value Attach(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    if (argc < 1) return throwError(env, "attach(addonContext) needs node-llama-cpp's native context");
    void* wrapped = nullptr;
    if (napi_unwrap(env, argv[0], &wrapped) != napi_ok || wrapped == nullptr)
        return throwError(env, "not a node-llama-cpp native context");
    auto* addonContext = static_cast<AddonContext*>(wrapped);
    if (addonContext->disposed || addonContext->ctx == nullptr) return throwError(env, "the context is disposed");

    auto* loop = new Loop();
    std::string error;
    // The first word of a polymorphic object points into its class's vtable, inside the addon file.
    const void* vtable = *reinterpret_cast<void* const*>(addonContext);
    if (!resolveApi(vtable, loop->api, error)) {
        delete loop;
        return throwError(env, error);
    }
    loop->context = addonContext->ctx;
    loop->vocab = loop->api.model_get_vocab(loop->api.get_model(loop->context));
    loop->batchCapacity = static_cast<int32_t>(std::max<uint32_t>(1, loop->api.n_batch(loop->context)));
    loop->batch = loop->api.batch_init(loop->batchCapacity, 0, 1);

    napi_value handle;
    if (napi_create_external(env, loop, finalizeLoop, nullptr, &handle) != napi_ok) {
        loop->api.batch_free(loop->batch);
        delete loop;
        return throwError(env, "cannot create the handle");
    }
    return handle;
}

// describe(handle) -> {contextSize, sequences, vocabulary}: what the JS side checks against node-llama-cpp's view.
napi_value Describe(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    Loop* loop = loopOf(env, argv[0]);
    if (loop == nullptr) return nullptr;
    napi_value result, value;
    CHECK(napi_create_object(env, &result));
    CHECK(napi_create_uint32(env, loop->api.n_ctx_seq(loop->context), &value));
    CHECK(napi_set_named_property(env, result, "sequenceContextSize", value));
    CHECK(napi_create_uint32(env, loop->api.n_seq_max(loop->context), &value));
    CHECK(napi_set_named_property(env, result, "sequences", value));
    CHECK(napi_create_int32(env, loop->api.vocab_n_tokens(loop->vocab), &value));
    CHECK(napi_set_named_property(env, result, "vocabulary", value));
    CHECK(napi_create_int32(env, loop->batchCapacity, &value));
    CHECK(napi_set_named_property(env, result, "batchSize", value));
    return result;
}

// configure(handle, {temperature, topK, topP, minP, seed}): node-llama-cpp's sampler chain, in its
// order (AddonSampler::rebuildChainIfNeeded): greedy at temperature 0, else top-k, top-p, min-p,
// temperature, then a seeded draw. Same seed, same tokens as node-llama-cpp's own loop.
napi_value Configure(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    Loop* loop = loopOf(env, argv[0]);
    if (loop == nullptr) return nullptr;
    if (loop->running) return throwError(env, "the decode loop is running");
    const double temperature = numberProperty(env, argv[1], "temperature", 0);
    const double topK = numberProperty(env, argv[1], "topK", 40);
    const double topP = numberProperty(env, argv[1], "topP", 0.95);
    const double minP = numberProperty(env, argv[1], "minP", 0);
    const double seed = numberProperty(env, argv[1], "seed", 0);

    if (loop->sampler != nullptr) loop->api.sampler_free(loop->sampler);
    auto& api = loop->api;
    loop->sampler = api.chain_init(api.chain_default_params());
    if (temperature <= 0) {
        api.chain_add(loop->sampler, api.init_greedy());
    } else {
        const int32_t vocabulary = api.vocab_n_tokens(loop->vocab);
        const int32_t k = topK <= 0 ? vocabulary : std::min<int32_t>(static_cast<int32_t>(topK), vocabulary);
        api.chain_add(loop->sampler, api.init_top_k(k));
        if (topP >= 0 && topP <= 1) api.chain_add(loop->sampler, api.init_top_p(static_cast<float>(topP), 1));
        if (minP > 0) api.chain_add(loop->sampler, api.init_min_p(static_cast<float>(minP), 1));
        api.chain_add(loop->sampler, api.init_temp(static_cast<float>(temperature)));
        api.chain_add(loop->sampler, api.init_dist(static_cast<uint32_t>(seed)));
    }
    return nullptr;
}

void FinalizeOutbox(napi_env, void* data, void*) {
    delete static_cast<Outbox*>(data);
}

// Runs on the JavaScript thread: hands everything in the run's outbox over as one array.
void CallOnToken(napi_env env, napi_value callback, void* context, void*) {
    if (env == nullptr) return;
    auto* outbox = static_cast<Outbox*>(context);
    std::vector<llama_token> tokens;
    {
        std::lock_guard<std::mutex> lock(outbox->mutex);
        tokens.swap(outbox->tokens);
    }
    if (tokens.empty()) return;
    napi_value array, value, undefined;
    napi_create_array_with_length(env, tokens.size(), &array);
    for (size_t index = 0; index < tokens.size(); index++) {
        napi_create_int32(env, tokens[index], &value);
        napi_set_element(env, array, static_cast<uint32_t>(index), value);
    }
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, callback, 1, &array, nullptr);
}

void Execute(napi_env, void* data) {
    auto* run = static_cast<Run*>(data);
    Loop* loop = run->loop;
    auto& api = loop->api;
    const auto started = std::chrono::steady_clock::now();
    // Waking the JavaScript thread costs ~15 µs here (a syscall and a futex), a tenth of a small
    // model's token: tokens that come faster than signalIntervalMs share one wake-up.
    auto lastSignal = started - std::chrono::hours(1);
    bool unsignalled = false;
    const llama_pos contextSize = static_cast<llama_pos>(api.n_ctx_seq(loop->context));
    std::vector<llama_token> input = run->input;
    while (true) {
        if (loop->stopRequested.load(std::memory_order_relaxed)) { run->reason = StopReason::Requested; break; }
        if (run->emitted >= run->limit) { run->reason = StopReason::Limit; break; }
        if (run->position + static_cast<llama_pos>(input.size()) > contextSize) { run->reason = StopReason::ContextFull; break; }
        if (loop->unconsumed.load(std::memory_order_relaxed) >= run->unconsumedLimit) { run->reason = StopReason::Backpressure; break; }
        if (run->emitted > 0 && std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count() >= run->sliceMs) {
            run->reason = StopReason::Slice;
            break;
        }

        llama_batch& batch = loop->batch;
        const int32_t count = static_cast<int32_t>(input.size());
        batch.n_tokens = count;
        for (int32_t index = 0; index < count; index++) {
            batch.token[index] = input[index];
            batch.pos[index] = run->position + index;
            batch.n_seq_id[index] = 1;
            batch.seq_id[index][0] = run->sequence;
            batch.logits[index] = index == count - 1;
        }
        const int32_t status = api.decode(loop->context, batch);
        if (status != 0) {
            run->reason = StopReason::Error;
            run->error = status == 1
                ? "could not find a KV slot for the batch (try reducing the size of the batch or increase the context)"
                : "Eval has failed";
            break;
        }
        run->position += count;

        const llama_token next = api.sampler_sample(loop->sampler, loop->context, -1);
        if (api.vocab_is_eog(loop->vocab, next)) { run->reason = StopReason::EndOfGeneration; break; }
        loop->unconsumed.fetch_add(1, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lock(run->outbox->mutex);
            run->outbox->tokens.push_back(next);
        }
        run->emitted++;
        input.assign(1, next);
        const auto now = std::chrono::steady_clock::now();
        if (std::chrono::duration<double, std::milli>(now - lastSignal).count() >= run->signalIntervalMs) {
            napi_call_threadsafe_function(run->onToken, nullptr, napi_tsfn_blocking);
            lastSignal = now;
            unsignalled = false;
        } else {
            unsignalled = true;
        }
    }
    if (unsignalled) napi_call_threadsafe_function(run->onToken, nullptr, napi_tsfn_blocking);
}

void Complete(napi_env env, napi_status status, void* data) {
    auto* run = static_cast<Run*>(data);
    run->loop->running = false;
    napi_value result = nullptr, value;
    if (status == napi_ok && run->reason != StopReason::Error) {
        napi_create_object(env, &result);
        napi_create_int32(env, run->emitted, &value);
        napi_set_named_property(env, result, "emitted", value);
        napi_create_int32(env, run->position, &value);
        napi_set_named_property(env, result, "position", value);
        napi_create_string_utf8(env, reasonName(run->reason), NAPI_AUTO_LENGTH, &value);
        napi_set_named_property(env, result, "reason", value);
        napi_resolve_deferred(env, run->deferred, result);
    } else {
        napi_value message;
        const std::string text = run->error.empty() ? "the decode loop was cancelled" : run->error;
        napi_create_string_utf8(env, text.c_str(), NAPI_AUTO_LENGTH, &message);
        napi_create_error(env, nullptr, message, &result);
        napi_reject_deferred(env, run->deferred, result);
    }
    napi_release_threadsafe_function(run->onToken, napi_tsfn_release);
    napi_delete_async_work(env, run->work);
    napi_delete_reference(env, run->handle);
    delete run;
}

// run(handle, {sequence, position, input, limit, unconsumedLimit, sliceMs, signalIntervalMs}, onTokens) -> Promise<{emitted, position, reason}>.
// Decodes `input` (1 to batchSize tokens, in one batch: the part of a prompt not in the cells yet,
// or the token sampled last) at `position` in `sequence`, samples, hands the token to
// onTokens([...]) (tokens sampled within signalIntervalMs of the last wake-up go together), and
// goes on with that token, until stopped, `limit` tokens, end of generation, a full context,
// `unconsumedLimit` tokens not yet taken by JavaScript, or `sliceMs` of pool-thread time (so other
// pool work is not starved).
// The last token handed over is never decoded: it is the next input, as in node-llama-cpp.
napi_value RunLoop(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    Loop* loop = loopOf(env, argv[0]);
    if (loop == nullptr) return nullptr;
    if (loop->running) return throwError(env, "the decode loop is already running");
    if (loop->sampler == nullptr) return throwError(env, "configure the sampler first");

    auto* run = new Run();
    run->loop = loop;
    run->sequence = static_cast<llama_seq_id>(numberProperty(env, argv[1], "sequence", 0));
    run->position = static_cast<llama_pos>(numberProperty(env, argv[1], "position", 0));
    if (!readInput(env, argv[1], run->input) || run->input.empty() || static_cast<int32_t>(run->input.size()) > loop->batchCapacity) {
        delete run;
        return throwError(env, "input must be 1 to " + std::to_string(loop->batchCapacity) + " tokens (the context's batch size)");
    }
    run->limit = static_cast<int32_t>(numberProperty(env, argv[1], "limit", 1));
    run->unconsumedLimit = static_cast<int32_t>(numberProperty(env, argv[1], "unconsumedLimit", 256));
    run->sliceMs = numberProperty(env, argv[1], "sliceMs", 20);
    run->signalIntervalMs = numberProperty(env, argv[1], "signalIntervalMs", 0);

    const llama_pos last = loop->api.memory_seq_pos_max(loop->api.get_memory(loop->context), run->sequence);
    if (last + 1 != run->position) {
        delete run;
        return throwError(env, "the sequence's cells end at position " + std::to_string(last + 1) + ", not " + std::to_string(numberProperty(env, argv[1], "position", 0)));
    }

    napi_value promise, name;
    CHECK(napi_create_promise(env, &run->deferred, &promise));
    CHECK(napi_create_string_utf8(env, "edge-llm decode loop", NAPI_AUTO_LENGTH, &name));
    run->outbox = new Outbox();
    if (napi_create_threadsafe_function(env, argv[2], nullptr, name, 0, 1, run->outbox, FinalizeOutbox, run->outbox, CallOnToken, &run->onToken) != napi_ok) {
        delete run->outbox;
        delete run;
        return throwError(env, "cannot create the token callback");
    }
    CHECK(napi_create_async_work(env, nullptr, name, Execute, Complete, run, &run->work));
    CHECK(napi_create_reference(env, argv[0], 1, &run->handle));
    loop->stopRequested.store(false);
    // JavaScript starts a run with nothing left to take (a stopped stream may have left tokens untaken).
    loop->unconsumed.store(0);
    loop->running = true;
    CHECK(napi_queue_async_work(env, run->work));
    return promise;
}

// stop(handle): the running loop ends after the token it is decoding.
napi_value Stop(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    Loop* loop = loopOf(env, argv[0]);
    if (loop == nullptr) return nullptr;
    loop->stopRequested.store(true);
    return nullptr;
}

// consumed(handle, count): JavaScript took `count` tokens; a loop paused for backpressure may go on.
napi_value Consumed(napi_env env, napi_callback_info info) {
    size_t argc = 2;
    napi_value argv[2];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    Loop* loop = loopOf(env, argv[0]);
    if (loop == nullptr) return nullptr;
    int32_t count = 0;
    CHECK(napi_get_value_int32(env, argv[1], &count));
    loop->unconsumed.fetch_sub(count);
    return nullptr;
}

// erase(handle, sequence, from): drops the sequence's cells from position `from` on. Only while no
// loop runs and the caller holds node-llama-cpp's context lock.
napi_value Erase(napi_env env, napi_callback_info info) {
    size_t argc = 3;
    napi_value argv[3];
    CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
    Loop* loop = loopOf(env, argv[0]);
    if (loop == nullptr) return nullptr;
    if (loop->running) return throwError(env, "the decode loop is running");
    int32_t sequence = 0, from = 0;
    CHECK(napi_get_value_int32(env, argv[1], &sequence));
    CHECK(napi_get_value_int32(env, argv[2], &from));
    const bool erased = loop->api.memory_seq_rm(loop->api.get_memory(loop->context), sequence, from, -1);
    napi_value result;
    CHECK(napi_get_boolean(env, erased, &result));
    return result;
}

napi_value Init(napi_env env, napi_value exports) {
    const napi_property_descriptor properties[] = {
        {"attach", nullptr, Attach, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"describe", nullptr, Describe, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"configure", nullptr, Configure, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"run", nullptr, RunLoop, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"stop", nullptr, Stop, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"consumed", nullptr, Consumed, nullptr, nullptr, nullptr, napi_default, nullptr},
        {"erase", nullptr, Erase, nullptr, nullptr, nullptr, napi_default, nullptr},
    };
    napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties);
    return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
