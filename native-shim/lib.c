/*
 * Node-API glue for the client library (src/lib): the process's pool views,
 * stitched spans, dirty tracking with userfaultfd WP-async + PAGEMAP_SCAN,
 * batched unmapping (zombies), getxattr, detach. The system calls are in
 * vm.c, the process-wide state in process.c.
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

#include "core.h"
#include "glue.h"
#include "process.h"
#include "vm.h"

/* One mapping object per pool view, shared by every env of the process. */
static mapping pool_maps[16][DVM_VIEWS];
static dvm_pool *pool_of[16];

static napi_value set_num(napi_env env, napi_value obj, const char *key, double v)
{
  napi_value n;
  CHECK(napi_create_double(env, v, &n));
  CHECK(napi_set_named_property(env, obj, key, n));
  return obj;
}

static napi_value set_bool(napi_env env, napi_value obj, const char *key, bool v)
{
  napi_value b;
  CHECK(napi_get_boolean(env, v, &b));
  CHECK(napi_set_named_property(env, obj, key, b));
  return obj;
}

static napi_value set_str(napi_env env, napi_value obj, const char *key, const char *v)
{
  napi_value s;
  if (v) CHECK(napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &s));
  else CHECK(napi_get_null(env, &s));
  CHECK(napi_set_named_property(env, obj, key, s));
  return obj;
}

static char *get_string(napi_env env, napi_value v, const char *what)
{
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    char msg[128];
    snprintf(msg, sizeof msg, "daxvm_shim: %s must be a string", what);
    type_error(env, msg);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

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
  mapping *m = NULL;
  if (rc == 0) {
    int slot = 0;
    while (slot < 16 && pool_of[slot] && pool_of[slot] != p) slot++;
    if (slot == 16) rc = -EMFILE;
    else {
      pool_of[slot] = p;
      m = &pool_maps[slot][kind];
      if (!m->addr) {
        m->kind = KIND_POOL;
        m->length = m->reserved = p->size;
        m->tracked = kind == DVM_VIEW_RW && p->tracked;
        m->lease_fd = -1;
        m->pool = p;
        m->refs = 1;
        m->addr = addr;
      }
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
 *        private, ephemeral, track) -> { handle, heap, tracked }
 * One span: an address range of our own (or ephemeral-heap slots) with each
 * pool run mapped at its place by MAP_FIXED, then, when asked, registered for
 * write-protect tracking and armed.
 */
static napi_value js_stitch(napi_env env, napi_callback_info info)
{
  napi_value argv[6], o, handle;
  if (!get_args(env, info, 6, argv)) return NULL;
  mapping *pm = get_live(env, argv[0]);
  if (!pm) return NULL;
  if (pm->kind != KIND_POOL) return type_error(env, "daxvm_shim: stitch needs a pool view handle");
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
  const double *runs = data;
  dvm_pool *p = pm->pool;
  uint64_t total = 0;
  for (size_t i = 0; i < count; i += 2) {
    double off = runs[i], len = runs[i + 1];
    if (!(off >= 0) || !(len > 0) || off != (double)(uint64_t)off || len != (double)(uint64_t)len ||
        (uint64_t)off % 4096 || (uint64_t)len % 4096 || (uint64_t)off + (uint64_t)len > p->size)
      return type_error(env, "daxvm_shim: a run must be whole 4 KiB pages inside the pool");
    total += (uint64_t)len;
  }
  int fd = -1;
  dvm_lock();
  if (writable && !priv) {
    if (p->fd_rw < 0) { /* ask poolView(path, 'rw' or 'rw-untracked') first */
      dvm_unlock();
      napi_throw_error(env, "ERR_DAXVM_NO_RW_POOL", "daxvm_shim: the pool is not open for writing");
      return NULL;
    }
    fd = p->fd_rw;
  } else {
    fd = p->fd_ro >= 0 ? p->fd_ro : p->fd_rw;
  }
  mapping *m = calloc(1, sizeof *m);
  int rc = m ? 0 : -ENOMEM;
  void *addr = NULL;
  bool heap = false;
  if (rc == 0 && ephemeral) {
    rc = dvm_heap_alloc(total, &addr, &m->reserved);
    heap = rc == 0;
    if (rc == -ENOMEM) rc = 0; /* heap full: an ordinary reservation */
  }
  int uffd = -1;
  bool tracked = track && !priv && writable && dvm_tracking_available();
  if (rc == 0 && tracked) rc = dvm_process_uffd(&uffd);
  dvm_unlock();
  const char *sys = "mmap";
  if (rc == 0 && !heap) {
    m->reserved = total;
    rc = dvm_reserve(total, total >= DVM_SLOT ? DVM_SLOT : 4096, &addr);
  }
  if (rc == 0) {
    uint64_t at = 0;
    for (size_t i = 0; i < count && rc == 0; i += 2) {
      rc = dvm_map_fixed((char *)addr + at, (uint64_t)runs[i + 1], fd, (uint64_t)runs[i], writable, priv);
      at += (uint64_t)runs[i + 1];
    }
    if (rc == 0 && tracked) {
      sys = "ioctl(UFFDIO_REGISTER)";
      rc = dvm_uffd_register_wp(uffd, addr, total);
      if (rc == 0) {
        sys = "ioctl(UFFDIO_WRITEPROTECT)";
        rc = dvm_uffd_writeprotect(uffd, addr, total, 1);
      }
    }
  }
  if (rc < 0) {
    if (addr) {
      if (heap) {
        dvm_unreserve(addr, m->reserved);
        dvm_lock();
        dvm_heap_free(addr, m->reserved);
        dvm_unlock();
      } else {
        munmap(addr, m->reserved);
      }
    }
    free(m);
    return throw_errno(env, -rc, sys, NULL);
  }
  m->addr = addr;
  m->length = total;
  m->refs = 1;
  m->kind = heap ? KIND_HEAP : KIND_SPAN;
  m->tracked = tracked;
  m->lease_fd = -1;
  handle = new_handle(env, m);
  if (!handle) return NULL;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_set_named_property(env, o, "handle", handle));
  if (!set_bool(env, o, "heap", heap) || !set_bool(env, o, "tracked", tracked) ||
      !set_num(env, o, "address", (double)(uintptr_t)addr))
    return NULL;
  return o;
}

/*
 * The written pages of [off, +len) of a tracked mapping, counted; with
 * rearm they are write-protected again in the same call, and with sync each
 * run of them is written back (msync MS_SYNC) after.
 */
static int scan_written(mapping *m, uint64_t off, uint64_t len, bool rearm, bool sync,
                        uint64_t *pages, const char **sys)
{
  int pm;
  *sys = "open(/proc/self/pagemap)";
  dvm_lock();
  int rc = dvm_process_pagemap(&pm);
  dvm_unlock();
  if (rc < 0) return rc;
  uint64_t ps = 4096;
  uint64_t s = off & ~(ps - 1), e = (off + len + ps - 1) & ~(ps - 1);
  if (e > m->length) e = (m->length + ps - 1) & ~(ps - 1);
  *pages = 0;
  dvm_region regions[256];
  uint64_t at = (uint64_t)(uintptr_t)m->addr + s, end = (uint64_t)(uintptr_t)m->addr + e;
  while (at < end) {
    uint64_t walk_end = end;
    *sys = "ioctl(PAGEMAP_SCAN)";
    int n = dvm_pagemap_scan(pm, (void *)(uintptr_t)at, end - at, rearm, regions, 256, &walk_end);
    if (n < 0) return n;
    for (int i = 0; i < n; i++) {
      *pages += (regions[i].end - regions[i].start) / ps;
      if (sync) {
        *sys = "msync";
        if (msync((void *)(uintptr_t)regions[i].start, regions[i].end - regions[i].start, MS_SYNC) != 0)
          return -errno;
      }
    }
    if (n < 256 || walk_end <= at) break;
    at = walk_end;
  }
  return 0;
}

static napi_value written_common(napi_env env, napi_callback_info info, bool rearm)
{
  napi_value argv[4], out;
  uint64_t off, len;
  bool sync = false;
  if (!get_args(env, info, rearm ? 4 : 3, argv)) return NULL;
  mapping *m = get_live(env, argv[0]);
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
  int rc = len ? scan_written(m, off, len, rearm, sync, &pages, &sys) : 0;
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

static mapping *zombies;
static uint64_t zombie_pages, zombie_count;

static int by_addr(const void *a, const void *b)
{
  const mapping *x = *(mapping *const *)a, *y = *(mapping *const *)b;
  return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Drop every zombie: adjacent spans of one kind in one call. Returns how many. */
static uint64_t drop_zombies(void)
{
  dvm_lock();
  mapping *list = zombies;
  uint64_t n = zombie_count;
  zombies = NULL;
  zombie_pages = zombie_count = 0;
  dvm_unlock();
  if (n == 0) return 0;
  mapping **v = malloc(n * sizeof *v);
  uint64_t k = 0;
  for (mapping *z = list; z; z = z->zombie_next) {
    if (v) v[k++] = z;
    else { /* no memory for sorting: one at a time */
      give_back(z);
    }
  }
  if (v) {
    qsort(v, k, sizeof *v, by_addr);
    for (uint64_t i = 0; i < k;) {
      uint64_t j = i + 1;
      unsigned char *end = v[i]->addr + v[i]->reserved;
      while (j < k && v[j]->kind == v[i]->kind && v[j]->addr == end) end += v[j++]->reserved;
      uint64_t len = (uint64_t)(end - v[i]->addr);
      int rc = v[i]->kind == KIND_HEAP ? dvm_unreserve(v[i]->addr, len) : munmap(v[i]->addr, len);
      if (rc == 0 && v[i]->kind == KIND_HEAP) {
        dvm_lock();
        for (uint64_t x = i; x < j; x++) dvm_heap_free(v[x]->addr, v[x]->reserved);
        dvm_unlock();
      }
      for (uint64_t x = i; x < j; x++)
        if (rc == 0) v[x]->addr = NULL;
        else give_back(v[x]);
      i = j;
    }
    free(v);
  }
  for (mapping *z = list, *next; z; z = next) {
    next = z->zombie_next;
    if (z->lease_fd >= 0) close(z->lease_fd);
    z->lease_fd = -1;
    release(z);
  }
  return n;
}

/*
 * zombie(handle, leaseFd, maxPages) -> spans dropped now (0: queued).
 * The views are detached at once; the span and its file handle stay until
 * the zombies reach maxPages pages, then all are dropped together.
 */
static napi_value js_zombie(napi_env env, napi_callback_info info)
{
  napi_value argv[3], out;
  int fd;
  uint64_t max;
  if (!get_args(env, info, 3, argv)) return NULL;
  mapping *m = get_live(env, argv[0]);
  if (!m || !get_fd(env, argv[1], &fd) || !get_u64(env, argv[2], "maxPages", &max)) return NULL;
  if (m->kind != KIND_SPAN && m->kind != KIND_HEAP)
    return type_error(env, "daxvm_shim: only stitched spans become zombies");
  if (m->lease_fd >= 0) return type_error(env, "daxvm_shim: already a zombie");
  if (!detach_views(env, m)) return NULL;
  __atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL); /* the zombie list's */
  bool full;
  dvm_lock();
  m->lease_fd = fd;
  m->zombie_next = zombies;
  zombies = m;
  zombie_count++;
  zombie_pages += m->length / 4096;
  full = zombie_pages >= max;
  dvm_unlock();
  CHECK(napi_create_double(env, full ? (double)drop_zombies() : 0, &out));
  return out;
}

/* flushZombies() -> spans dropped */
static napi_value js_flush_zombies(napi_env env, napi_callback_info info)
{
  napi_value out;
  CHECK(napi_create_double(env, (double)drop_zombies(), &out));
  return out;
}

/* stats() -> ephemeral heap and zombie counters */
static napi_value js_stats(napi_env env, napi_callback_info info)
{
  napi_value o;
  uint64_t size, used, top, zp, zc;
  dvm_lock();
  dvm_heap_stats(&size, &used, &top);
  zp = zombie_pages;
  zc = zombie_count;
  dvm_unlock();
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
  mapping *m = get_live(env, argv[0]);
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
