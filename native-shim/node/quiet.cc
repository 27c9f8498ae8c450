/*
 * Buffers over memory the process keeps mapped for its whole life (a pool
 * view), made with V8's own API because Node-API cannot make them:
 * napi_create_external_arraybuffer goes through node::Buffer::New with a
 * finalizer (a weak persistent, a cleanup hook), and V8 counts the buffer's
 * length as external memory, so a 1 GiB mapping asked for a garbage
 * collection and every few MiB of small ones pushed toward one. A backing
 * store with v8::BackingStore::EmptyDeleter is neither: V8 counts it as 0
 * bytes (it frees nothing) and runs nothing when it is collected. The
 * buffer can still be detached (napi_detach_arraybuffer), which is how
 * unmap makes it unusable.
 *
 * The napi_value <-> v8::Local conversion is Node-API's own (a napi_value
 * is the address of a handle in the current HandleScope).
 */
/* node_version.h (through node_buffer.h) defines the Node-API version itself: no node_api.h here. */
#undef NAPI_VERSION
#include <node_buffer.h>
#include <v8.h>

#include <cstdint>
#include <memory>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
/* As in glue.h: what a guard runs when V8 frees its buffer (V8's own deleter shape). */
typedef void (*dvm_guard_release)(void *data, size_t length, void *arg);

static napi_value to_napi(v8::Local<v8::Value> local)
{
  return reinterpret_cast<napi_value>(*local);
}

static v8::Local<v8::ArrayBuffer> quiet(v8::Isolate *isolate, void *data, size_t length)
{
  std::unique_ptr<v8::BackingStore> store =
      v8::ArrayBuffer::NewBackingStore(data, length, v8::BackingStore::EmptyDeleter, nullptr);
  return v8::ArrayBuffer::New(isolate, std::move(store));
}

/* An ArrayBuffer over [data, +length): not external memory, no finalizer. */
extern "C" napi_value dvm_quiet_arraybuffer(napi_env env, void *data, size_t length)
{
  (void)env;
  return to_napi(quiet(v8::Isolate::GetCurrent(), data, length));
}

/* A Buffer over [data, +length) made of `ab`, or NULL. */
static napi_value as_buffer(v8::Isolate *isolate, v8::Local<v8::ArrayBuffer> ab, size_t length)
{
  v8::Local<v8::Uint8Array> buf;
  if (!node::Buffer::New(isolate, ab, 0, length).ToLocal(&buf)) return nullptr;
  return to_napi(buf);
}

/* The same, as a Buffer (what the library hands out): one call instead of two. */
extern "C" napi_value dvm_quiet_buffer(napi_env env, void *data, size_t length)
{
  (void)env;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  return as_buffer(isolate, quiet(isolate, data, length), length);
}

/* The private key the guard hangs on, one per isolate (worker threads each have their own). */
static thread_local v8::Isolate *key_isolate;
static thread_local v8::Eternal<v8::Private> key;

/*
 * A quiet ArrayBuffer over [data, +length) that carries a guard: an empty
 * ArrayBuffer (0 bytes: nothing counted) whose backing store's deleter runs
 * drop(arg) when V8 frees it, which is once nothing reaches the mapped
 * ArrayBuffer any more. No JS callback and no weak handle per buffer: the
 * deleter runs from V8's array-buffer sweeper (any thread), so drop must be
 * thread-safe and must not wait for the JS thread.
 */
static v8::Local<v8::ArrayBuffer> guarded(v8::Isolate *isolate, void *data, size_t length,
                                          v8::BackingStore::DeleterCallback drop, void *arg, bool *ok)
{
  v8::Local<v8::Context> context = isolate->GetCurrentContext();
  if (key_isolate != isolate) {
    key.Set(isolate, v8::Private::New(isolate, v8::String::NewFromUtf8Literal(isolate, "daxvm.lease")));
    key_isolate = isolate;
  }
  v8::Local<v8::ArrayBuffer> ab = quiet(isolate, data, length);
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(data, 0, drop, arg);
  v8::Local<v8::ArrayBuffer> guard = v8::ArrayBuffer::New(isolate, std::move(store));
  *ok = ab->SetPrivate(context, key.Get(isolate), guard).FromMaybe(false);
  return ab;
}

/*
 * A quiet ArrayBuffer over [data, +length) whose guard runs release(data, 0,
 * arg) once V8 frees it (the release is the caller's: a lease record's drop,
 * a span's reference; this file calls nothing of ours). NULL when V8 failed
 * (what arg holds is then the caller's to give back).
 */
extern "C" napi_value dvm_guarded_arraybuffer(napi_env env, void *data, size_t length, dvm_guard_release release, void *arg)
{
  (void)env;
  bool ok = false;
  v8::Local<v8::ArrayBuffer> ab = guarded(v8::Isolate::GetCurrent(), data, length, release, arg, &ok);
  return ok ? to_napi(ab) : nullptr;
}

/* The same with a Buffer over it, made here (one call instead of two). */
extern "C" napi_value dvm_guarded_buffer(napi_env env, void *data, size_t length, dvm_guard_release release, void *arg)
{
  (void)env;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  bool ok = false;
  v8::Local<v8::ArrayBuffer> ab = guarded(isolate, data, length, release, arg, &ok);
  return ok ? as_buffer(isolate, ab, length) : nullptr;
}
