/*
 * What the Node-API glue files share: argument and error helpers, and the
 * handles and views over spans (glue.c). The glue parses, calls the core
 * (native-shim/core, no Node-API there) and throws; it keeps nothing of its
 * own but the list of ArrayBuffers handed out over each span.
 */
#ifndef DAXVM_GLUE_H
#define DAXVM_GLUE_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

#include "../core/span.h"

napi_value throw_last(napi_env env, const char *what);
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *code);
napi_value type_error(napi_env env, const char *msg);
bool get_args(napi_env env, napi_callback_info info, size_t argc, napi_value *argv);
bool get_u64(napi_env env, napi_value v, const char *name, uint64_t *out);
bool get_fd(napi_env env, napi_value v, int *out);
bool get_bool(napi_env env, napi_value v, const char *name, bool *out);
/* Matches a string argument against names[]; returns the index or -1 (thrown). */
int get_choice(napi_env env, napi_value v, const char *what, const char *const *names, int count);
/* A malloc'ed copy of a string argument, or NULL (thrown). */
char *get_string(napi_env env, napi_value v, const char *what);
napi_value set_num(napi_env env, napi_value obj, const char *key, double v);
napi_value set_bool(napi_env env, napi_value obj, const char *key, bool v);
napi_value set_str(napi_env env, napi_value obj, const char *key, const char *v);

dvm_span *get_span(napi_env env, napi_value v);
/* A span not yet given back, or throws (using a handle after unmap is a bug). */
dvm_span *get_live(napi_env env, napi_value v);
bool check_range(napi_env env, dvm_span *s, uint64_t off, uint64_t len);
/* A new handle (External, type-tagged) owning one reference to s. */
napi_value new_handle(napi_env env, dvm_span *s);
/* An ArrayBuffer over [off, +len) of s, no copy; it holds a reference to s (none for a pool view). */
napi_value new_view(napi_env env, dvm_span *s, uint64_t off, uint64_t len);
/*
 * Buffers over memory that outlives them (pool views), from quiet.cc: not
 * counted as V8 external memory, no finalizer; NULL when V8 failed.
 */
napi_value dvm_quiet_arraybuffer(napi_env env, void *data, size_t length);
napi_value dvm_quiet_buffer(napi_env env, void *data, size_t length);
/*
 * A quiet ArrayBuffer (or Buffer) over [data, +length) with a guard that runs
 * release(data, 0, arg) once V8 frees it: from V8's sweeper, on any thread,
 * so release must be thread-safe and never wait for the JS thread. NULL when
 * V8 failed (arg is then the caller's to give back). quiet.cc calls nothing
 * of ours: each user passes its own release (a span's reference, glue.c; a
 * lease record's drop, attach.c).
 */
typedef void (*dvm_guard_release)(void *data, size_t length, void *arg);
napi_value dvm_guarded_arraybuffer(napi_env env, void *data, size_t length, dvm_guard_release release, void *arg);
/*
 * The same, with a guard the thread's buffers share in turn (quiet.cc says
 * how): the guard of the thread's previous such buffer is reused when
 * done(that buffer's arg) says it was unmapped, which must have called
 * dvm_guard_forget on it. release then runs with the arg of the last buffer
 * that was given the guard.
 */
typedef bool (*dvm_guard_done)(void *arg);
napi_value dvm_shared_guard_arraybuffer(napi_env env, void *data, size_t length, dvm_guard_release release,
                                        dvm_guard_done done, void *arg);
napi_value dvm_shared_guard_buffer(napi_env env, void *data, size_t length, dvm_guard_release release,
                                   dvm_guard_done done, void *arg);
/* An unmapped (detached) buffer no longer keeps its shared guard alive. */
void dvm_guard_forget(napi_env env, napi_value arraybuffer);
/* The lease a lease handle (leases.c's lease()) holds, or NULL (thrown). */
dvm_lease *get_lease(napi_env env, napi_value v);
/* A lease handle, or null / undefined for none (*out NULL). */
bool get_optional_lease(napi_env env, napi_value v, dvm_lease **out);
/* Lease records (attach.c): keep a lease, returning its id (-1: ENOMEM, the caller drops it); drop by id (a stale id drops nothing). */
double dvm_record_put(const dvm_lease *l);
bool dvm_record_drop(double id);
/* Does the id still name a record holding its lease (not dropped)? */
bool dvm_record_live(double id);
/*
 * A lease taken, as memory JS may use: the lease moves into a record (*id),
 * dropped once V8 frees the Buffer (array: its ArrayBuffer alone) over
 * [data, +length). NULL with an exception pending, the lease dropped.
 */
napi_value dvm_lease_view(napi_env env, dvm_lease *lease, void *data, size_t length, bool array, double *id);
/* Detach every live view of s (its ArrayBuffers read as length 0 after). */
napi_value detach_views(napi_env env, dvm_span *s);

/* Each glue file registers its functions on exports. */
napi_status addon_init(napi_env env, napi_value exports);
napi_status lib_init(napi_env env, napi_value exports);
napi_status bench_init(napi_env env, napi_value exports);
napi_status fallocate_init(napi_env env, napi_value exports);
napi_status ns_init(napi_env env, napi_value exports);
napi_status attach_init(napi_env env, napi_value exports);
napi_status lease_init(napi_env env, napi_value exports);
napi_status ns_attach_init(napi_env env, napi_value exports);

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) return throw_last(env, #call);                  \
  } while (0)

#endif
