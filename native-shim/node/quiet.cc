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

extern "C" void dvm_lease_record_drop(uint64_t id); /* attach.c */

static void drop_lease(void *data, size_t length, void *arg)
{
  (void)data, (void)length;
  dvm_lease_record_drop((uint64_t)(uintptr_t)arg);
}

extern "C" void dvm_view_release(void *span); /* glue.c */

static void release_span(void *data, size_t length, void *arg)
{
  (void)data, (void)length;
  dvm_view_release(arg);
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

/* A leased buffer's guard drops lease record `id` (a stale id, after unmap, drops nothing). */
static v8::Local<v8::ArrayBuffer> leased(v8::Isolate *isolate, void *data, size_t length, uint64_t id, bool *ok)
{
  return guarded(isolate, data, length, drop_lease, (void *)(uintptr_t)id, ok);
}

/*
 * An ArrayBuffer over a span's memory (a stitched or file mapping) whose
 * guard gives back one reference to the span: not counted as V8 external
 * memory, so a 1 GiB mapping asks for no collection. NULL when V8 failed
 * (the reference is then the caller's to give back).
 */
extern "C" napi_value dvm_span_arraybuffer(napi_env env, void *data, size_t length, void *span)
{
  (void)env;
  bool ok = false;
  v8::Local<v8::ArrayBuffer> ab = guarded(v8::Isolate::GetCurrent(), data, length, release_span, span, &ok);
  return ok ? to_napi(ab) : nullptr;
}

extern "C" napi_value dvm_leased_buffer(napi_env env, void *data, size_t length, uint64_t id)
{
  (void)env;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  bool ok = false;
  v8::Local<v8::ArrayBuffer> ab = leased(isolate, data, length, id, &ok);
  return ok ? as_buffer(isolate, ab, length) : nullptr;
}

/*
 * The same ArrayBuffer without the Buffer over it: JavaScript makes that
 * (Buffer.from in optimized code) for a fifth of node::Buffer::New's cost,
 * which sets the prototype through the API.
 */
extern "C" napi_value dvm_leased_arraybuffer(napi_env env, void *data, size_t length, uint64_t id)
{
  (void)env;
  bool ok = false;
  v8::Local<v8::ArrayBuffer> ab = leased(v8::Isolate::GetCurrent(), data, length, id, &ok);
  return ok ? to_napi(ab) : nullptr;
}
