/*
 * The daxvm native shim as Node sees it: module init, and the functions
 * over plain file maps (the vanilla path, the pool in the daemon): map,
 * view, msync, madvise, unmap, flock, punchHole. The client library's
 * functions are glued in lib.c, the benchmarks' in bench.c, fallocate in
 * fallocate.c (with unwrittenExtents); the work itself is in native-shim/core.
 */
#include <errno.h>
#include <node_api.h>
#include <stdlib.h>

#include "../core/sys.h"
#include "glue.h"

/* map(fd, length, writable[, populate]) -> handle */
static napi_value js_map(napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  int fd;
  uint64_t length;
  bool writable, populate = false;
  size_t argc = 4;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
    return throw_last(env, "napi_get_cb_info");
  if (argc > 3) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[3], &t));
    if (t != napi_undefined && !get_bool(env, argv[3], "populate", &populate)) return NULL;
  }
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_u64(env, argv[1], "length", &length))
    return NULL;
  if (napi_get_value_bool(env, argv[2], &writable) != napi_ok)
    return type_error(env, "daxvm_shim: writable must be a boolean");
  void *addr;
  int rc = dvm_map_file(fd, length, writable, populate, &addr);
  if (rc < 0) return throw_errno(env, -rc, "mmap", NULL);
  dvm_span *s = dvm_span_wrap(addr, length, DVM_SPAN_FILE);
  if (!s) {
    dvm_unmap(addr, length);
    return throw_errno(env, ENOMEM, "mmap", NULL);
  }
  return new_handle(env, s);
}

/* view(handle, offset, length) -> ArrayBuffer over the mapping, no copy */
static napi_value js_view(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  uint64_t off, len;
  if (!get_args(env, info, 3, argv)) return NULL;
  dvm_span *s = get_live(env, argv[0]);
  if (!s || !get_u64(env, argv[1], "offset", &off) || !get_u64(env, argv[2], "length", &len) ||
      !check_range(env, s, off, len))
    return NULL;
  return new_view(env, s, off, len);
}

/* msync(handle, offset, length): MS_SYNC over the covering pages */
static napi_value js_msync(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  uint64_t off, len;
  if (!get_args(env, info, 3, argv)) return NULL;
  dvm_span *s = get_live(env, argv[0]);
  if (!s || !get_u64(env, argv[1], "offset", &off) || !get_u64(env, argv[2], "length", &len) ||
      !check_range(env, s, off, len))
    return NULL;
  int rc = dvm_msync_range(s->addr, s->length, off, len);
  return rc < 0 ? throw_errno(env, -rc, "msync", NULL) : NULL;
}

/* madvise(handle, offset, length, advice) */
static napi_value js_madvise(napi_env env, napi_callback_info info)
{
  static const char *const names[] = {"willneed", "dontneed", "hugepage", "sequential", "random"};
  napi_value argv[4];
  uint64_t off, len;
  if (!get_args(env, info, 4, argv)) return NULL;
  dvm_span *s = get_live(env, argv[0]);
  if (!s || !get_u64(env, argv[1], "offset", &off) || !get_u64(env, argv[2], "length", &len) ||
      !check_range(env, s, off, len))
    return NULL;
  int advice = get_choice(env, argv[3], "advice", names, 5);
  if (advice < 0) return NULL;
  int rc = dvm_madvise_range(s->addr, s->length, off, len, advice);
  return rc < 0 ? throw_errno(env, -rc, "madvise", NULL) : NULL;
}

/* unmap(handle): detach every live view, then give the memory back; idempotent */
static napi_value js_unmap(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  dvm_span *s = get_span(env, argv[0]);
  if (!s || !s->addr || s->kind == DVM_SPAN_POOL) return NULL;
  if (s->zombie) return NULL; /* dropped with its batch */
  if (!detach_views(env, s)) return NULL;
  int rc = dvm_span_give_back(s);
  return rc < 0 ? throw_errno(env, -rc, "munmap", NULL) : NULL;
}

/* flock(fd, 'exclusive' | 'shared' | 'unlock'), never blocks */
static napi_value js_flock(napi_env env, napi_callback_info info)
{
  static const char *const names[] = {"exclusive", "shared", "unlock"};
  napi_value argv[2];
  int fd;
  if (!get_args(env, info, 2, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  int op = get_choice(env, argv[1], "lock mode", names, 3);
  if (op < 0) return NULL;
  int rc = dvm_flock(fd, op);
  if (rc == 0) return NULL;
  /* EAGAIN and EWOULDBLOCK are one number; flock's own word for it is clearer */
  return throw_errno(env, -rc, "flock", rc == -EWOULDBLOCK ? "EWOULDBLOCK" : NULL);
}

/* punchHole(fd, offset, length): the range reads as zeros, its space goes back to the host */
static napi_value js_punch_hole(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  int fd;
  uint64_t off, len;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd) ||
      !get_u64(env, argv[1], "offset", &off) || !get_u64(env, argv[2], "length", &len))
    return NULL;
  int rc = dvm_punch_hole(fd, off, len);
  return rc < 0 ? throw_errno(env, -rc, "fallocate", NULL) : NULL;
}

napi_status addon_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"map", NULL, js_map, NULL, NULL, NULL, napi_enumerable, NULL},
      {"view", NULL, js_view, NULL, NULL, NULL, napi_enumerable, NULL},
      {"msync", NULL, js_msync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"madvise", NULL, js_madvise, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmap", NULL, js_unmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"flock", NULL, js_flock, NULL, NULL, NULL, napi_enumerable, NULL},
      {"punchHole", NULL, js_punch_hole, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
{
  CHECK(addon_init(env, exports));
  CHECK(lib_init(env, exports));
  CHECK(bench_init(env, exports));
  CHECK(fallocate_init(env, exports));
  CHECK(ns_init(env, exports));
  CHECK(attach_init(env, exports));
  CHECK(lease_init(env, exports));
  CHECK(ns_attach_init(env, exports));
  return exports;
}
