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
#include <cstring>
#include <new>
#include <memory>

typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
/* As in glue.h: what a guard runs when V8 frees its buffer (V8's own deleter shape), and whether a buffer is done with it. */
typedef void (*dvm_guard_release)(void *data, size_t length, void *arg);
typedef bool (*dvm_guard_done)(void *arg);

static napi_value to_napi(v8::Local<v8::Value> local)
{
  return reinterpret_cast<napi_value>(*local);
}

static v8::Local<v8::Value> from_napi(napi_value v)
{
  v8::Local<v8::Value> local;
  static_assert(sizeof local == sizeof v, "a napi_value is a v8::Local");
  memcpy(static_cast<void *>(&local), &v, sizeof v);
  return local;
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
 *
 * The mapped ArrayBuffer holds its guard in its first embedder field (an
 * ArrayBuffer has V8_ARRAY_BUFFER_INTERNAL_FIELD_COUNT of them, which V8
 * sets to zero and traces like any field, and which neither V8 nor Node
 * use): one store. A private property, as before, was a property added to
 * each buffer through the API (a lookup, a map transition, a property
 * array): about 2 700 instructions of the 12 000 per mmap+unmap (callgrind,
 * issue 10). It stays the way for a V8 built without such fields.
 */
static v8::Local<v8::ArrayBuffer> guarded(v8::Isolate *isolate, void *data, size_t length,
                                          v8::BackingStore::DeleterCallback drop, void *arg, bool *ok)
{
  v8::Local<v8::ArrayBuffer> ab = quiet(isolate, data, length);
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(data, 0, drop, arg);
  v8::Local<v8::ArrayBuffer> guard = v8::ArrayBuffer::New(isolate, std::move(store));
  if (v8::ArrayBuffer::kEmbedderFieldCount > 0) {
    ab->SetInternalField(0, guard);
    *ok = true;
    return ab;
  }
  if (key_isolate != isolate) {
    key.Set(isolate, v8::Private::New(isolate, v8::String::NewFromUtf8Literal(isolate, "daxvm.lease")));
    key_isolate = isolate;
  }
  *ok = ab->SetPrivate(isolate->GetCurrentContext(), key.Get(isolate), guard).FromMaybe(false);
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


/*
 * Guards shared by a thread's mappings in turn. A guard per buffer (above)
 * is a second ArrayBuffer per mapping: its backing store, extension and
 * shared_ptr block (three mallocs, freed on V8's sweeper thread) and its
 * sweeping, about 2 400 of the 12 000 instructions of an mmap+unmap on the
 * mapping thread and 1 000 more on V8's helper threads (callgrind, issue 10).
 * But a guard only has to outlive the buffers that still need it: a buffer
 * that was unmapped (dvm_guard_forget) no longer does. So each thread keeps
 * its last guard (a weak handle: it does not keep the guard alive) and hands
 * it to its next buffer when done(arg of the buffer that had it) says that
 * buffer was unmapped; the guard's cell then names the new buffer's arg.
 * At any time a guard is reachable from at most one buffer that was not
 * unmapped (its last), so it is freed, and releases that buffer's arg, once
 * that buffer is collected: the same moment as a guard of its own.
 * A mapping loop makes a new guard only when the old one was collected.
 */
struct guard_cell {
  dvm_guard_release release;
  void *arg; /* atomic: the arg of the last buffer given this guard */
};

static void guard_cell_release(void *data, size_t length, void *c)
{
  guard_cell *cell = static_cast<guard_cell *>(c);
  cell->release(data, 0, __atomic_load_n(&cell->arg, __ATOMIC_ACQUIRE));
  delete cell;
}

/* The thread's last shared guard. Trivially destructible on purpose: a worker's isolate is gone before its thread. */
struct last_guard {
  v8::Isolate *isolate;
  v8::Global<v8::ArrayBuffer> *guard; /* weak; left behind (never Reset) when the isolate changes */
  guard_cell *cell;                   /* valid while *guard is not empty: the guard's deleter frees it */
};
static thread_local last_guard last;

/* A quiet ArrayBuffer over [data, +length) whose guard (shared, as above) runs release(data, 0, arg) once V8 frees it; NULL when V8 failed. */
static v8::Local<v8::ArrayBuffer> shared_guarded(v8::Isolate *isolate, void *data, size_t length, dvm_guard_release release,
                                                 dvm_guard_done done, void *arg, bool *ok)
{
  if (v8::ArrayBuffer::kEmbedderFieldCount == 0) return guarded(isolate, data, length, release, arg, ok);
  if (last.isolate != isolate) last = {isolate, new v8::Global<v8::ArrayBuffer>(), nullptr};
  v8::Local<v8::ArrayBuffer> ab = quiet(isolate, data, length);
  v8::Local<v8::ArrayBuffer> guard;
  /* Not empty: the guard is alive, and so is its cell (freed by its deleter, after V8 cleared the handle). */
  if (!last.guard->IsEmpty() && last.cell->release == release && done(__atomic_load_n(&last.cell->arg, __ATOMIC_RELAXED))) {
    guard = last.guard->Get(isolate);
    __atomic_store_n(&last.cell->arg, arg, __ATOMIC_RELEASE);
  } else {
    guard_cell *cell = new (std::nothrow) guard_cell{release, arg};
    if (!cell) {
      *ok = false;
      return ab;
    }
    std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(data, 0, guard_cell_release, cell);
    guard = v8::ArrayBuffer::New(isolate, std::move(store));
    last.guard->Reset(isolate, guard);
    last.guard->SetWeak();
    last.cell = cell;
  }
  ab->SetInternalField(0, guard);
  *ok = true;
  return ab;
}

extern "C" napi_value dvm_shared_guard_arraybuffer(napi_env env, void *data, size_t length, dvm_guard_release release,
                                                   dvm_guard_done done, void *arg)
{
  (void)env;
  bool ok = false;
  v8::Local<v8::ArrayBuffer> ab = shared_guarded(v8::Isolate::GetCurrent(), data, length, release, done, arg, &ok);
  return ok ? to_napi(ab) : nullptr;
}

extern "C" napi_value dvm_shared_guard_buffer(napi_env env, void *data, size_t length, dvm_guard_release release,
                                              dvm_guard_done done, void *arg)
{
  (void)env;
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  bool ok = false;
  v8::Local<v8::ArrayBuffer> ab = shared_guarded(isolate, data, length, release, done, arg, &ok);
  return ok ? as_buffer(isolate, ab, length) : nullptr;
}

/* An unmapped buffer lets go of its guard (a buffer the program keeps after unmap keeps no guard alive). */
extern "C" void dvm_guard_forget(napi_env env, napi_value arraybuffer)
{
  (void)env;
  v8::Local<v8::Value> v = from_napi(arraybuffer);
  if (v8::ArrayBuffer::kEmbedderFieldCount > 0 && v->IsArrayBuffer())
    v.As<v8::ArrayBuffer>()->SetInternalField(0, v8::Undefined(v8::Isolate::GetCurrent()));
}
