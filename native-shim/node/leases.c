/*
 * Node-API glue for leases (native-shim/core/lease.h): lease handles over
 * pool blocks, the ordering fence, and the daemon's lock and owner word the
 * library checks. Parse, call the core, throw.
 */
#include <errno.h>
#include <node_api.h>
#include <stdlib.h>

#include "../core/lease.h"
#include "../core/process.h"
#include "../core/sys.h"
#include "glue.h"

static const napi_type_tag LEASE_TAG = {0x6461787666736c65ULL, 0x6173656c65763031ULL};

static void lease_finalize(napi_env env, void *data, void *hint)
{
  (void)env, (void)hint;
  dvm_lease_drop(data);
  free(data);
}

dvm_lease *get_lease(napi_env env, napi_value v)
{
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, &LEASE_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    type_error(env, "daxvm_shim: not a lease handle");
    return NULL;
  }
  return data;
}

/* A lease handle, or null / undefined for none. */
bool get_optional_lease(napi_env env, napi_value v, dvm_lease **out)
{
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_null || t == napi_undefined) {
    *out = NULL;
    return true;
  }
  *out = get_lease(env, v);
  return *out != NULL;
}

/*
 * lease(poolHandle, runs: Float64Array [poolOffset, length, ...], ino, gen,
 * writable) -> lease handle. The blocks are leased when this returns (and the CPU has
 * fenced): the caller then checks that they are still the file's. Throws
 * ENOENT (no table: no daemon made one), EACCES, EPERM, EPROTO (not this
 * pool's table), ENOSPC (the table is full), E2BIG (a range too far),
 * EAGAIN (writable: blocks an unconfirmed commit vouches for; fsync the file
 * through the mount, then lease again).
 * The lease is dropped by dropLease, by stitch's span, or when the handle is
 * collected.
 */
static napi_value js_lease(napi_env env, napi_callback_info info)
{
  napi_value argv[5], out;
  uint64_t ino, gen;
  bool writable = false;
  if (!get_args(env, info, 5, argv) || !get_bool(env, argv[4], "writable", &writable)) return NULL;
  dvm_span *pm = get_live(env, argv[0]);
  if (!pm) return NULL;
  if (pm->kind != DVM_SPAN_POOL) return type_error(env, "daxvm_shim: lease needs a pool view handle");
  bool is_ta = false;
  napi_typedarray_type tt;
  size_t count = 0;
  void *data = NULL;
  if (napi_is_typedarray(env, argv[1], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[1], &tt, &count, &data, NULL, NULL) != napi_ok ||
      tt != napi_float64_array || count % 2 != 0 || count / 2 > 65536)
    return type_error(env, "daxvm_shim: runs must be a Float64Array of (offset, length) pairs");
  if (!get_u64(env, argv[2], "ino", &ino) || !get_u64(env, argv[3], "gen", &gen)) return NULL;
  const double *nums = data;
  dvm_block_run *runs = malloc((count / 2 + 1) * sizeof *runs);
  dvm_lease *l = calloc(1, sizeof *l);
  if (!runs || !l) {
    free(runs);
    free(l);
    return throw_errno(env, ENOMEM, "malloc", NULL);
  }
  for (size_t i = 0; i < count; i += 2)
    runs[i / 2] = (dvm_block_run){(uint64_t)nums[i] / 4096, ((uint64_t)nums[i + 1] + 4095) / 4096};
  dvm_lease_table *t = NULL;
  int rc = dvm_pool_leases(pm->pool, &t);
  const char *sys = "open(lease table)";
  if (rc == 0) {
    sys = "lease";
    rc = dvm_lease_take(t, runs, (unsigned)(count / 2), (uint32_t)ino, (uint32_t)gen, writable, l);
  }
  free(runs);
  if (rc < 0) {
    free(l);
    return throw_errno(env, -rc, sys, NULL);
  }
  if (napi_create_external(env, l, lease_finalize, NULL, &out) != napi_ok) {
    dvm_lease_drop(l);
    free(l);
    return throw_last(env, "napi_create_external");
  }
  CHECK(napi_type_tag_object(env, out, &LEASE_TAG));
  return out;
}

/* dropLease(handle): the lease goes (idempotent) */
static napi_value js_drop_lease(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  dvm_lease *l = get_lease(env, argv[0]);
  if (l) dvm_lease_drop(l);
  return NULL;
}

/* fence(): a full memory barrier (seq_cst), for the daemon's side of the lease ordering */
static napi_value js_fence(napi_env env, napi_callback_info info)
{
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return NULL;
}

/*
 * lockHeld(fd) -> is the file's lock held by another open file (a daemon
 * serving the pool holds it, shared or exclusive, until it has closed the
 * pool)? A non-blocking exclusive flock that, when it is granted, is let go
 * at once: one or two system calls, nothing kept.
 */
static napi_value js_lock_held(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  int rc = dvm_flock(fd, DVM_LOCK_EXCLUSIVE);
  if (rc == 0) dvm_flock(fd, DVM_LOCK_UNLOCK);
  else if (rc != -EWOULDBLOCK) return throw_errno(env, -rc, "flock", NULL);
  CHECK(napi_get_boolean(env, rc != 0, &out));
  return out;
}

/* leaseOwner() -> this process's owner word in the lease table, as a bigint */
static napi_value js_lease_owner(napi_env env, napi_callback_info info)
{
  napi_value out;
  CHECK(napi_create_bigint_uint64(env, dvm_lease_owner(), &out));
  return out;
}

napi_status lease_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"lease", NULL, js_lease, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropLease", NULL, js_drop_lease, NULL, NULL, NULL, napi_enumerable, NULL},
      {"leaseOwner", NULL, js_lease_owner, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lockHeld", NULL, js_lock_held, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fence", NULL, js_fence, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
