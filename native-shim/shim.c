/*
 * Node-API glue of the daxvm native shim: argument checking, errors, and the
 * lifetime of mappings and the ArrayBuffers handed out over them. The system
 * calls themselves are in core.c (files) and vm.c (reservations, fixed maps,
 * userfaultfd, PAGEMAP_SCAN); the client library's functions are glued in
 * lib.c, with their process-wide state in process.c.
 *
 * A mapping is of one kind (glue.h): a file map (map()), a stitched span of
 * its own or of the ephemeral heap (lib.c's stitch()), or a process-wide pool
 * view (lib.c's poolView(), never unmapped, no view list: its ArrayBuffers
 * are detached by the library with detach()).
 *
 * Lifetime rules (why this file keeps a list of views):
 * - map() returns an External (type-tagged) owning one `mapping`.
 * - view() returns an external ArrayBuffer over part of it, no copy. Each view
 *   holds a reference count on the mapping, so a mapping whose handle was
 *   garbage-collected stays mapped while any view is alive; the last one
 *   unmaps it. Views are also kept in a list with a weak reference each.
 * - unmap() detaches every live view first (a stale Buffer then has length 0
 *   instead of reading freed memory), then munmaps. The view finalizers that
 *   run afterwards only unlink and free bookkeeping; they never touch memory.
 */
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "glue.h"
#include "process.h"

struct view_entry {
  mapping *m;
  napi_ref ref; /* weak, to find the ArrayBuffer again at unmap */
  view_entry *prev, *next;
};

/* Tells our Externals apart from any other addon's. */
static const napi_type_tag MAPPING_TAG = {0x6461787666736d61ULL,
                                          0x7070696e67763031ULL};

/* A Node-API call itself failed: surface whatever it left pending. */
napi_value throw_last(napi_env env, const char *what)
{
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char msg[256];
    snprintf(msg, sizeof msg, "daxvm_shim: %s failed: %s", what,
             info && info->error_message ? info->error_message : "unknown");
    napi_throw_error(env, "ERR_DAXVM_SHIM", msg);
  }
  return NULL;
}

/* A failed system call, shaped like Node's own: code, errno (<0), syscall. */
napi_value throw_errno(napi_env env, int err, const char *syscall,
                              const char *code)
{
  char scratch[16], msg[256];
  if (!code) code = dvm_errno_name(err, scratch, sizeof scratch);
  snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(err), syscall);
  napi_value jcode, jmsg, error, jsys, jerrno;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &error) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsys) != napi_ok ||
      napi_create_int32(env, -err, &jerrno) != napi_ok ||
      napi_set_named_property(env, error, "syscall", jsys) != napi_ok ||
      napi_set_named_property(env, error, "errno", jerrno) != napi_ok)
    return throw_last(env, "creating an error");
  napi_throw(env, error);
  return NULL;
}

napi_value type_error(napi_env env, const char *msg)
{
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* Reads exactly argc arguments. */
bool get_args(napi_env env, napi_callback_info info, size_t argc,
                     napi_value *argv)
{
  size_t got = argc;
  if (napi_get_cb_info(env, info, &got, argv, NULL, NULL) != napi_ok) {
    throw_last(env, "napi_get_cb_info");
    return false;
  }
  if (got < argc) {
    type_error(env, "daxvm_shim: missing arguments");
    return false;
  }
  return true;
}

/* A non-negative integer number up to 2^53 (offsets and lengths). */
bool get_u64(napi_env env, napi_value v, const char *name,
                    uint64_t *out)
{
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) ||
      d > 9007199254740992.0 || d != (double)(uint64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "daxvm_shim: %s must be a non-negative integer",
             name);
    type_error(env, msg);
    return false;
  }
  *out = (uint64_t)d;
  return true;
}

bool get_fd(napi_env env, napi_value v, int *out)
{
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) ||
      d > 2147483647.0 || d != (double)(int)d) {
    type_error(env, "daxvm_shim: fd must be a file descriptor");
    return false;
  }
  *out = (int)d;
  return true;
}

/* Matches a string argument against names[]; returns the index or -1. */
static int get_choice(napi_env env, napi_value v, const char *what,
                      const char *const *names, int count)
{
  char buf[32];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) == napi_ok)
    for (int i = 0; i < count; i++)
      if (strcmp(buf, names[i]) == 0) return i;
  char msg[128];
  snprintf(msg, sizeof msg, "daxvm_shim: unknown %s", what);
  type_error(env, msg);
  return -1;
}

mapping *get_mapping(napi_env env, napi_value v)
{
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, &MAPPING_TAG, &ok) != napi_ok ||
      !ok || napi_get_value_external(env, v, &data) != napi_ok) {
    napi_value pending;
    napi_get_and_clear_last_exception(env, &pending);
    type_error(env, "daxvm_shim: not a mapping handle");
    return NULL;
  }
  return data;
}

/* A live mapping, or throws (using a handle after unmap is a bug). */
mapping *get_live(napi_env env, napi_value v)
{
  mapping *m = get_mapping(env, v);
  if (m && !m->addr) {
    napi_throw_error(env, "ERR_DAXVM_UNMAPPED",
                     "daxvm_shim: the mapping was unmapped");
    return NULL;
  }
  return m;
}

bool check_range(napi_env env, mapping *m, uint64_t off, uint64_t len)
{
  if (off <= m->length && len <= m->length - off) return true;
  char msg[160];
  snprintf(msg, sizeof msg,
           "daxvm_shim: range offset %llu length %llu outside a mapping of "
           "%llu bytes",
           (unsigned long long)off, (unsigned long long)len,
           (unsigned long long)m->length);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return false;
}

static void handle_finalize(napi_env env, void *data, void *hint)
{
  (void)env, (void)hint;
  release(data);
}

int give_back(mapping *m)
{
  int rc = 0;
  if (!m->addr) return 0;
  switch (m->kind) {
  case KIND_FILE:
  case KIND_SPAN: rc = dvm_unmap(m->addr, m->reserved); break;
  case KIND_HEAP:
    rc = dvm_unreserve(m->addr, m->reserved);
    if (rc == 0) {
      dvm_lock();
      dvm_heap_free(m->addr, m->reserved);
      dvm_unlock();
    }
    break;
  case KIND_POOL: return 0; /* the process's view: kept for its life */
  }
  if (rc == 0) m->addr = NULL;
  return rc;
}

void release(mapping *m)
{
  if (m->kind == KIND_POOL) return; /* process-wide, never freed */
  if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  give_back(m);
  free(m);
}

bool get_bool(napi_env env, napi_value v, const char *name, bool *out)
{
  if (napi_get_value_bool(env, v, out) == napi_ok) return true;
  char msg[128];
  snprintf(msg, sizeof msg, "daxvm_shim: %s must be a boolean", name);
  type_error(env, msg);
  return false;
}

napi_value new_handle(napi_env env, mapping *m)
{
  napi_value handle;
  if (napi_create_external(env, m, handle_finalize, NULL, &handle) != napi_ok) {
    release(m);
    return throw_last(env, "napi_create_external");
  }
  CHECK(napi_type_tag_object(env, handle, &MAPPING_TAG));
  return handle;
}


static void view_finalize(napi_env env, void *data, void *hint)
{
  (void)data;
  view_entry *e = hint;
  if (e->ref) napi_delete_reference(env, e->ref);
  if (e->prev) e->prev->next = e->next;
  else e->m->views = e->next;
  if (e->next) e->next->prev = e->prev;
  release(e->m);
  free(e);
}

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

  mapping *m = calloc(1, sizeof *m);
  if (!m) return throw_errno(env, ENOMEM, "mmap", NULL);
  void *addr;
  int rc = dvm_map_file(fd, length, writable, populate, &addr);
  if (rc < 0) {
    free(m);
    return throw_errno(env, -rc, "mmap", NULL);
  }
  m->addr = addr;
  m->length = m->reserved = length;
  m->refs = 1;
  m->kind = KIND_FILE;
  m->lease_fd = -1;
  return new_handle(env, m);
}

/* view(handle, offset, length) -> ArrayBuffer over the mapping, no copy */
static napi_value js_view(napi_env env, napi_callback_info info)
{
  napi_value argv[3], ab;
  uint64_t off, len;
  if (!get_args(env, info, 3, argv)) return NULL;
  mapping *m = get_live(env, argv[0]);
  if (!m || !get_u64(env, argv[1], "offset", &off) ||
      !get_u64(env, argv[2], "length", &len) || !check_range(env, m, off, len))
    return NULL;

  if (m->kind == KIND_POOL) {
    /* The process's pool view outlives every ArrayBuffer over it: nothing to track. */
    CHECK(napi_create_external_arraybuffer(env, m->addr + off, (size_t)len, NULL, NULL, &ab));
    return ab;
  }
  view_entry *e = calloc(1, sizeof *e);
  if (!e) return throw_errno(env, ENOMEM, "view", NULL);
  e->m = m;
  if (napi_create_external_arraybuffer(env, m->addr + off, (size_t)len,
                                       view_finalize, e, &ab) != napi_ok) {
    free(e);
    return throw_last(env, "napi_create_external_arraybuffer");
  }
  /* From here the finalizer owns e; link it before anything can fail. */
  __atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
  e->next = m->views;
  if (m->views) m->views->prev = e;
  m->views = e;
  CHECK(napi_create_reference(env, ab, 0, &e->ref));
  return ab;
}

/* msync(handle, offset, length): MS_SYNC over the covering pages */
static napi_value js_msync(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  uint64_t off, len;
  if (!get_args(env, info, 3, argv)) return NULL;
  mapping *m = get_live(env, argv[0]);
  if (!m || !get_u64(env, argv[1], "offset", &off) ||
      !get_u64(env, argv[2], "length", &len) || !check_range(env, m, off, len))
    return NULL;
  int rc = dvm_msync_range(m->addr, m->length, off, len);
  return rc < 0 ? throw_errno(env, -rc, "msync", NULL) : NULL;
}

/* madvise(handle, offset, length, advice) */
static napi_value js_madvise(napi_env env, napi_callback_info info)
{
  static const char *const names[] = {"willneed", "dontneed", "hugepage",
                                      "sequential", "random"};
  napi_value argv[4];
  uint64_t off, len;
  if (!get_args(env, info, 4, argv)) return NULL;
  mapping *m = get_live(env, argv[0]);
  if (!m || !get_u64(env, argv[1], "offset", &off) ||
      !get_u64(env, argv[2], "length", &len) || !check_range(env, m, off, len))
    return NULL;
  int advice = get_choice(env, argv[3], "advice", names, 5);
  if (advice < 0) return NULL;
  int rc = dvm_madvise_range(m->addr, m->length, off, len, advice);
  return rc < 0 ? throw_errno(env, -rc, "madvise", NULL) : NULL;
}

/* unmap(handle): detach every live view, then munmap; idempotent */
static napi_value js_unmap(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return NULL;
  mapping *m = get_mapping(env, argv[0]);
  if (!m || !m->addr || m->kind == KIND_POOL) return NULL;
  if (m->lease_fd >= 0) return NULL; /* a zombie: dropped with its batch */
  if (!detach_views(env, m)) return NULL;
  int rc = give_back(m);
  if (rc < 0) return throw_errno(env, -rc, "munmap", NULL);
  return NULL;
}

napi_value detach_views(napi_env env, mapping *m)
{
  napi_value ok;
  for (view_entry *e = m->views; e; e = e->next) {
    napi_value ab = NULL;
    CHECK(napi_get_reference_value(env, e->ref, &ab));
    if (ab) CHECK(napi_detach_arraybuffer(env, ab));
  }
  CHECK(napi_get_boolean(env, true, &ok));
  return ok;
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

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */)
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
  CHECK(napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));
  CHECK(lib_init(env, exports));
  CHECK(bench_init(env, exports));
  CHECK(fallocate_init(env, exports));
  return exports;
}
