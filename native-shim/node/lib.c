/*
 * Node-API glue for the client library (src/lib): the process's pool views,
 * stitched spans, dirty tracking with userfaultfd WP-async + PAGEMAP_SCAN,
 * batched unmapping (zombies), getxattr, detach. Parse, call the core
 * (native-shim/core: span.c, process.c, vm.c), throw.
 *
 * Worker threads: every function may run on any worker's thread at once.
 * Process-wide state (pools, uffd, heap, zombie list) is touched only under
 * dvm_lock(); a handle and its views belong to the env that made them,
 * except that a zombie may be dropped by whichever thread fills the batch
 * (it has no views left by then, and its reference count is atomic).
 */
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/process.h"
#include "../core/span.h"
#include "../core/sys.h"
#include "../core/vm.h"
#include "glue.h"

/* One span per pool view, shared by every env of the process. */
static dvm_span pool_spans[16][DVM_VIEWS];
static dvm_pool *pool_of[16];

static const char *errname(int err, char *scratch)
{
  return err ? dvm_errno_name(err, scratch, 16) : NULL;
}

/* getxattr(path | fd, name) -> Buffer (fgetxattr for an fd) */
static napi_value js_getxattr(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out;
  if (!get_args(env, info, 2, argv)) return NULL;
  napi_valuetype t0;
  int fd = -1;
  char *path = NULL;
  if (napi_typeof(env, argv[0], &t0) == napi_ok && t0 == napi_number) {
    if (!get_fd(env, argv[0], &fd)) return NULL;
  } else if (!(path = get_string(env, argv[0], "path"))) {
    return NULL;
  }
  char *name = get_string(env, argv[1], "name");
  if (!name) {
    free(path);
    return NULL;
  }
  size_t size = 4096, len = 0;
  char *buf = NULL;
  int rc;
  for (int tries = 0; tries < 4; tries++) {
    free(buf);
    buf = malloc(size);
    if (!buf) {
      rc = -ENOMEM;
      break;
    }
    rc = path ? dvm_getxattr(path, name, buf, size, &len) : dvm_fgetxattr(fd, name, buf, size, &len);
    if (rc != -ERANGE) break;
    /* the value grew: ask its size */
    rc = path ? dvm_getxattr(path, name, NULL, 0, &size) : dvm_fgetxattr(fd, name, NULL, 0, &size);
    if (rc < 0) break;
    size += 64;
  }
  free(path);
  free(name);
  if (rc < 0) {
    free(buf);
    return throw_errno(env, -rc, path ? "getxattr" : "fgetxattr", NULL);
  }
  napi_status st = napi_create_buffer_copy(env, len, buf, NULL, &out);
  free(buf);
  if (st != napi_ok) return throw_last(env, "napi_create_buffer_copy");
  return out;
}

/* quickStat(fd) -> { mountId, unique, devMajor, devMinor, mode }: no round trip to the file system */
static napi_value js_quick_stat(napi_env env, napi_callback_info info)
{
  napi_value argv[1], o;
  int fd;
  dvm_quick_stat q;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  int rc = dvm_quick_stat_fd(fd, &q);
  if (rc < 0) return throw_errno(env, -rc, "statx", NULL);
  CHECK(napi_create_object(env, &o));
  if (!set_num(env, o, "mountId", (double)q.mnt_id) || !set_bool(env, o, "unique", q.unique) ||
      !set_num(env, o, "devMajor", q.dev_major) || !set_num(env, o, "devMinor", q.dev_minor) ||
      !set_num(env, o, "mode", q.mode))
    return NULL;
  return o;
}

/* detach(arrayBuffer): a mapping's buffer no longer reaches its memory (length 0). */
static napi_value js_detach(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  bool is_ab = false, detached = false;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab)
    return type_error(env, "daxvm_shim: detach takes an ArrayBuffer");
  CHECK(napi_is_detached_arraybuffer(env, argv[0], &detached));
  if (!detached) CHECK(napi_detach_arraybuffer(env, argv[0]));
  return NULL;
}

/*
 * retire(arrayBuffer): for a buffer that another addon mapped (mmap-io has
 * no munmap; its finalizer unmaps at GC). Detach it, then replace its pages
 * with a PROT_NONE placeholder of the same size at the same address: the
 * memory and the file are let go at once, and the foreign finalizer's later
 * munmap removes only the placeholder, which nothing else can have been
 * given meanwhile (the addresses stay taken until then).
 */
static napi_value js_retire(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  bool is_ab = false, detached = false;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab)
    return type_error(env, "daxvm_shim: retire takes an ArrayBuffer");
  CHECK(napi_is_detached_arraybuffer(env, argv[0], &detached));
  if (detached) return NULL;
  void *data = NULL;
  size_t len = 0;
  CHECK(napi_get_arraybuffer_info(env, argv[0], &data, &len));
  if (((uintptr_t)data & 4095) != 0)
    return type_error(env, "daxvm_shim: retire needs a buffer that starts a mapping");
  CHECK(napi_detach_arraybuffer(env, argv[0]));
  if (len == 0) return NULL;
  int rc = dvm_unreserve(data, (len + 4095) & ~(uint64_t)4095);
  return rc < 0 ? throw_errno(env, -rc, "mmap", NULL) : NULL;
}

/* features() -> what the kernel offers and what the library will use */
static napi_value js_features(napi_env env, napi_callback_info info)
{
  const dvm_features *f = dvm_features_get();
  char s1[16], s2[16];
  napi_value o;
  CHECK(napi_create_object(env, &o));
  if (!set_bool(env, o, "userfaultfd", f->uffd_errno == 0) ||
      !set_str(env, o, "userfaultfdError", errname(f->uffd_errno, s1)) ||
      !set_num(env, o, "uffdFeatures", (double)f->uffd_features) ||
      !set_bool(env, o, "wpAsync", f->wp_async) ||
      !set_bool(env, o, "wpUnpopulated", f->wp_unpopulated) ||
      !set_bool(env, o, "pagemapScan", f->scan_errno == 0) ||
      !set_str(env, o, "pagemapScanError", errname(f->scan_errno, s2)) ||
      !set_bool(env, o, "tracking", dvm_tracking_available()))
    return NULL;
  return o;
}

/* poolView(path, 'ro' | 'rw' | 'rw-untracked') -> { handle, size, tracked, address } */
static napi_value js_pool_view(napi_env env, napi_callback_info info)
{
  static const char *const names[] = {"ro", "rw", "rw-untracked"};
  napi_value argv[2], o, handle;
  if (!get_args(env, info, 2, argv)) return NULL;
  char kind_s[16];
  size_t kl = 0;
  int kind = -1;
  if (napi_get_value_string_utf8(env, argv[1], kind_s, sizeof kind_s, &kl) == napi_ok)
    for (int i = 0; i < DVM_VIEWS; i++)
      if (strcmp(kind_s, names[i]) == 0) kind = i;
  if (kind < 0) return type_error(env, "daxvm_shim: unknown pool view");
  char *path = get_string(env, argv[0], "path");
  if (!path) return NULL;

  dvm_lock();
  dvm_pool *p = NULL;
  void *addr = NULL;
  int rc = dvm_pool_view(path, kind, &p, &addr);
  dvm_span *m = NULL;
  if (rc == 0) {
    int slot = 0;
    while (slot < 16 && pool_of[slot] && pool_of[slot] != p) slot++;
    if (slot == 16) rc = -EMFILE;
    else {
      pool_of[slot] = p;
      m = &pool_spans[slot][kind];
      if (!m->addr) dvm_span_pool_view(m, p, kind, addr);
    }
  }
  dvm_unlock();
  free(path);
  if (rc < 0) return throw_errno(env, -rc, kind == DVM_VIEW_RO ? "open(pool)" : "open(pool, O_RDWR)", NULL);
  handle = new_handle(env, m);
  if (!handle) return NULL;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_set_named_property(env, o, "handle", handle));
  if (!set_num(env, o, "size", (double)m->length) || !set_bool(env, o, "tracked", m->tracked) ||
      !set_num(env, o, "address", (double)(uintptr_t)m->addr))
    return NULL;
  return o;
}

/*
 * stitch(poolHandle, runs: Float64Array [poolOffset, length, ...], writable,
 *        private, ephemeral, track, lease | null) -> { handle, heap, tracked, address }
 * One span: an address range of our own (or ephemeral-heap slots) with each
 * pool run mapped at its place by MAP_FIXED, then, when asked, registered for
 * write-protect tracking and armed. The span takes the lease over (the lease
 * handle is empty after): dropped when the span is given back.
 */
static napi_value js_stitch(napi_env env, napi_callback_info info)
{
  napi_value argv[7], o, handle;
  if (!get_args(env, info, 7, argv)) return NULL;
  dvm_span *pm = get_live(env, argv[0]);
  if (!pm) return NULL;
  if (pm->kind != DVM_SPAN_POOL) return type_error(env, "daxvm_shim: stitch needs a pool view handle");
  dvm_lease *lease = NULL;
  if (!get_optional_lease(env, argv[6], &lease)) return NULL;
  bool is_ta = false, writable, priv, ephemeral, track;
  napi_typedarray_type tt;
  size_t count = 0;
  void *data = NULL;
  if (napi_is_typedarray(env, argv[1], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[1], &tt, &count, &data, NULL, NULL) != napi_ok ||
      tt != napi_float64_array || count == 0 || count % 2 != 0)
    return type_error(env, "daxvm_shim: runs must be a Float64Array of (offset, length) pairs");
  if (!get_bool(env, argv[2], "writable", &writable) || !get_bool(env, argv[3], "private", &priv) ||
      !get_bool(env, argv[4], "ephemeral", &ephemeral) || !get_bool(env, argv[5], "track", &track))
    return NULL;
  const double *nums = data;
  dvm_pool *p = pm->pool;
  dvm_run *runs = malloc(count / 2 * sizeof *runs);
  if (!runs) return throw_errno(env, ENOMEM, "malloc", NULL);
  for (size_t i = 0; i < count; i += 2) {
    double off = nums[i], len = nums[i + 1];
    if (!(off >= 0) || !(len > 0) || off != (double)(uint64_t)off || len != (double)(uint64_t)len ||
        (uint64_t)off % 4096 || (uint64_t)len % 4096 || (uint64_t)off + (uint64_t)len > p->size) {
      free(runs);
      return type_error(env, "daxvm_shim: a run must be whole 4 KiB pages inside the pool");
    }
    runs[i / 2] = (dvm_run){(uint64_t)off, (uint64_t)len};
  }
  dvm_lock();
  bool no_rw = writable && !priv && p->fd_rw < 0;
  dvm_unlock();
  if (no_rw) { /* ask poolView(path, 'rw' or 'rw-untracked') first */
    free(runs);
    napi_throw_error(env, "ERR_DAXVM_NO_RW_POOL", "daxvm_shim: the pool is not open for writing");
    return NULL;
  }
  dvm_span *s = NULL;
  const char *sys = "mmap";
  int rc = dvm_span_stitch(p, runs, (unsigned)(count / 2), writable, priv, ephemeral, track, lease, &s, &sys);
  free(runs);
  if (rc < 0) return throw_errno(env, -rc, sys, NULL);
  handle = new_handle(env, s);
  if (!handle) return NULL;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_set_named_property(env, o, "handle", handle));
  if (!set_bool(env, o, "heap", s->kind == DVM_SPAN_HEAP) || !set_bool(env, o, "tracked", s->tracked) ||
      !set_num(env, o, "address", (double)(uintptr_t)s->addr))
    return NULL;
  return o;
}

static napi_value written_common(napi_env env, napi_callback_info info, bool rearm)
{
  napi_value argv[4], out;
  uint64_t off, len;
  bool sync = false;
  if (!get_args(env, info, rearm ? 4 : 3, argv)) return NULL;
  dvm_span *m = get_live(env, argv[0]);
  if (!m || !get_u64(env, argv[1], "offset", &off) || !get_u64(env, argv[2], "length", &len) ||
      !check_range(env, m, off, len))
    return NULL;
  if (rearm && !get_bool(env, argv[3], "sync", &sync)) return NULL;
  if (!m->tracked) {
    napi_throw_error(env, "ERR_DAXVM_UNTRACKED", "daxvm_shim: this mapping is not tracked");
    return NULL;
  }
  uint64_t pages = 0;
  const char *sys = "";
  int rc = dvm_span_written(m, off, len, rearm, sync, &pages, &sys);
  if (rc < 0) return throw_errno(env, -rc, sys, NULL);
  CHECK(napi_create_double(env, (double)pages, &out));
  return out;
}

/* syncWritten(handle, offset, length, sync) -> pages written since the last call (re-armed) */
static napi_value js_sync_written(napi_env env, napi_callback_info info)
{
  return written_common(env, info, true);
}

/* countWritten(handle, offset, length) -> pages written since the last syncWritten */
static napi_value js_count_written(napi_env env, napi_callback_info info)
{
  return written_common(env, info, false);
}

/* ---- batched unmapping ------------------------------------------------------ */

/*
 * zombie(handle, maxPages) -> spans dropped now (0: queued).
 * The views are detached at once; the span and its lease stay until the
 * zombies reach maxPages pages, then all are dropped together.
 */
static napi_value js_zombie(napi_env env, napi_callback_info info)
{
  napi_value argv[2], out;
  uint64_t max;
  if (!get_args(env, info, 2, argv)) return NULL;
  dvm_span *m = get_live(env, argv[0]);
  if (!m || !get_u64(env, argv[1], "maxPages", &max)) return NULL;
  if (m->kind != DVM_SPAN_OWN && m->kind != DVM_SPAN_HEAP)
    return type_error(env, "daxvm_shim: only stitched spans become zombies");
  if (m->zombie) return type_error(env, "daxvm_shim: already a zombie");
  if (!detach_views(env, m)) return NULL;
  CHECK(napi_create_double(env, (double)dvm_zombie_add(m, max), &out));
  return out;
}

/* flushZombies() -> spans dropped */
static napi_value js_flush_zombies(napi_env env, napi_callback_info info)
{
  napi_value out;
  CHECK(napi_create_double(env, (double)dvm_zombie_flush(), &out));
  return out;
}

/* stats() -> ephemeral heap and zombie counters */
static napi_value js_stats(napi_env env, napi_callback_info info)
{
  napi_value o;
  uint64_t size, used, top, zp, zc;
  dvm_lock();
  dvm_heap_stats(&size, &used, &top);
  dvm_unlock();
  dvm_zombie_stats(&zc, &zp);
  CHECK(napi_create_object(env, &o));
  if (!set_num(env, o, "heapSize", (double)size) || !set_num(env, o, "heapUsed", (double)used) ||
      !set_num(env, o, "heapTop", (double)top) || !set_num(env, o, "zombies", (double)zc) ||
      !set_num(env, o, "zombiePages", (double)zp))
    return NULL;
  return o;
}

/* address(handle) -> the mapping's start address (for /proc/self/smaps) */
static napi_value js_address(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  dvm_span *m = get_live(env, argv[0]);
  if (!m) return NULL;
  CHECK(napi_create_double(env, (double)(uintptr_t)m->addr, &out));
  return out;
}

napi_status lib_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"getxattr", NULL, js_getxattr, NULL, NULL, NULL, napi_enumerable, NULL},
      {"quickStat", NULL, js_quick_stat, NULL, NULL, NULL, napi_enumerable, NULL},
      {"detach", NULL, js_detach, NULL, NULL, NULL, napi_enumerable, NULL},
      {"retire", NULL, js_retire, NULL, NULL, NULL, napi_enumerable, NULL},
      {"features", NULL, js_features, NULL, NULL, NULL, napi_enumerable, NULL},
      {"poolView", NULL, js_pool_view, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stitch", NULL, js_stitch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"syncWritten", NULL, js_sync_written, NULL, NULL, NULL, napi_enumerable, NULL},
      {"countWritten", NULL, js_count_written, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zombie", NULL, js_zombie, NULL, NULL, NULL, napi_enumerable, NULL},
      {"flushZombies", NULL, js_flush_zombies, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"address", NULL, js_address, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
