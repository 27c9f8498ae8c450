/*
 * The DaxVM path of the preload library: from an fd on a daxvm mount to
 * memory of the pool, as the Node library maps it (src/lib/map.ts): the
 * file's table read from the pool, a lease on its blocks (then the table
 * checked again), and either an attach (one contiguous run: an address in
 * the process's view of the pool, no system call, no new VMA) or a stitch
 * (one span, a fixed map per run, from the ephemeral heap with
 * MAP_DAXVM_EPHEMERAL). Read-only mappings come from the read-only view, so
 * a store faults in hardware. Anything else: the kernel's mmap, and why.
 *
 * Its mappings live in a static table (no allocation on unmap); a slot is
 * claimed and released with compare-and-swap, so threads map and unmap at
 * once; a batched unmap leaves the slot a zombie until the core drops it.
 */
#define _GNU_SOURCE
#include "preload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/sys.h"
#include "../include/daxvm_format.h"
#include "real.h"

#define PAGE 4096ull
#define MAX_RECS 8192

enum { R_FREE, R_BUSY, R_LIVE, R_ZOMBIE };

typedef struct {
  int state; /* atomic */
  uintptr_t addr;
  uint64_t len; /* whole pages */
  int attached, writable, tracked, nosync, batching;
  dvmp_mount *m;
  enum dvm_view kind;
  uint64_t base;   /* attached: pool byte offset of the first byte */
  dvm_lease lease; /* attached: the lease (a stitched span holds its own) */
  dvm_span span;   /* stitched */
  char path[256];  /* read-write: the file's path when mapped, for msync's mtime ("" when unknown or too long) */
} rec;

static rec recs[MAX_RECS];
static unsigned high;  /* atomic: slots below it have been used */
static unsigned count; /* atomic: slots not free (live, zombie, busy) */

int dvmp_any(void) { return __atomic_load_n(&count, __ATOMIC_ACQUIRE) != 0; }

static rec *claim(void)
{
  for (unsigned i = 0; i < MAX_RECS; i++) {
    unsigned h = __atomic_load_n(&high, __ATOMIC_ACQUIRE);
    if (i > h + 8) break;
    rec *r = &recs[i];
    int st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
    int was = st;
    if (st == R_ZOMBIE && __atomic_load_n(&r->span.embedded, __ATOMIC_ACQUIRE) != DVM_SPAN_STORAGE_FREE) continue;
    if (st != R_FREE && st != R_ZOMBIE) continue;
    if (!__atomic_compare_exchange_n(&r->state, &was, R_BUSY, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
    if (st == R_FREE) __atomic_add_fetch(&count, 1, __ATOMIC_ACQ_REL); /* a reclaimed zombie was counted already */
    while (h < i + 1 && !__atomic_compare_exchange_n(&high, &h, i + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    return r;
  }
  return NULL;
}

static void unclaim(rec *r)
{
  __atomic_store_n(&r->state, R_FREE, __ATOMIC_RELEASE);
  __atomic_sub_fetch(&count, 1, __ATOMIC_ACQ_REL);
}

static const char *fd_path(int fd, char *buf, size_t room)
{
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, buf, room - 1);
  if (n < 0) return "?";
  buf[n] = 0;
  return buf;
}

void *dvmp_map(void *addr, size_t len, int prot, int flags, int fd, off_t off, const char **why)
{
  static __thread char reason[1300];
  char pbuf[256];
  if ((flags & MAP_ANONYMOUS) || fd < 0) return *why = "anonymous", DVMP_KERNEL;
  if ((flags & MAP_TYPE) != MAP_SHARED && (flags & MAP_TYPE) != MAP_SHARED_VALIDATE)
    return *why = "a private mapping needs copy-on-write", DVMP_KERNEL;
  if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) return *why = "a fixed address", DVMP_KERNEL;
  if (flags & MAP_HUGETLB) return *why = "MAP_HUGETLB", DVMP_KERNEL;
  if ((prot & PROT_EXEC) || !(prot & (PROT_READ | PROT_WRITE)) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
    return *why = "prot is not read or read-write", DVMP_KERNEL;
  if (len == 0 || off < 0 || (uint64_t)off % PAGE) return *why = "length 0 or an unaligned offset", DVMP_KERNEL;
  int writable = (prot & PROT_WRITE) != 0;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || (fl & O_ACCMODE) == O_WRONLY || (writable && ((fl & O_ACCMODE) != O_RDWR || (fl & O_APPEND))))
    return *why = "the fd's mode does not allow it (the kernel answers)", DVMP_KERNEL;
  dvm_quick_stat q;
  if (dvm_quick_stat_fd(fd, &q) < 0 || (q.mode & S_IFMT) != S_IFREG) return *why = "not a regular file", DVMP_KERNEL;
  dvmp_mount *m;
  int rc = dvmp_mount_of(&q, &m);
  if (rc < 0 || !m) return *why = "not on a daxvm mount", DVMP_KERNEL;
  void *ro;
  rc = dvmp_mount_view(m, DVM_VIEW_RO, &ro);
  if (rc < 0) {
    snprintf(reason, sizeof reason, "no access to the pool file %s (%s)", m->pool, strerror(-rc));
    return *why = reason, DVMP_KERNEL;
  }
  dvm_pool_info info;
  if (dvm_pool_info_read(ro, m->p->size, &info) < 0) return *why = "the pool's superblock is not usable", DVMP_KERNEL;
  /* Who the file is: the shared namespace (no request to the daemon), else user.daxvm.ppt (one GETXATTR). */
  dvm_ns_file nf;
  int ns = dvmp_ns_of_fd(fd, &q, writable, m, &nf);
  unsigned long long ppt[7] = {0}; /* ino gen seq root level nodes size */
  if (ns && !(nf.flags & DAXVM_NS_INODE_TABLES)) return *why = "the file has no page tables (knob page_tables_on is 0)", DVMP_KERNEL;
  if (!ns) {
    rc = dvmp_read_ppt(fd, ppt);
    if (rc < 0) return *why = "no user.daxvm.ppt on the file", DVMP_KERNEL;
    if (!ppt[3]) return *why = "the file has no page tables (knob page_tables_on is 0)", DVMP_KERNEL;
  }
  int nosync = writable && info.knob_msync == 0;
  enum dvm_view kind = !writable ? DVM_VIEW_RO : nosync ? DVM_VIEW_RW_UNTRACKED : DVM_VIEW_RW;
  void *view = ro;
  if (kind != DVM_VIEW_RO && (rc = dvmp_mount_view(m, kind, &view)) < 0) {
    snprintf(reason, sizeof reason, "no write access to the pool file %s (%s)", m->pool, strerror(-rc));
    return *why = reason, DVMP_KERNEL;
  }
  uint64_t maplen = ((uint64_t)len + PAGE - 1) & ~(PAGE - 1);
  dvmp_leased l = {0};
  const char *no = NULL;
  for (int round = 0; round < 2; round++) {
    int retry = !ns;
    if (ns) no = dvmp_lease_ns(m, &nf, (uint64_t)off / PAGE, ((uint64_t)off + maplen) / PAGE, writable, &l, &retry);
    if (retry) {
      if (ns && dvmp_read_ppt(fd, ppt) < 0) return *why = "no user.daxvm.ppt on the file", DVMP_KERNEL;
      ns = 0;
      no = dvmp_lease_table(m, ro, &info, (uint32_t)ppt[0], (uint32_t)ppt[1], (uint64_t)off / PAGE,
                            ((uint64_t)off + maplen) / PAGE, writable, &l);
    }
    /* Blocks the daemon's newest commit vouches for by checksum: its FSYNC confirms that commit (one request). */
    if (!no || !l.vouched || round == 1 || fsync(fd) != 0) break;
    if (l.heap) dvm_real_munmap(l.heap, l.heap_len);
    l = (dvmp_leased){0};
  }
  if (no) {
    if (l.heap) dvm_real_munmap(l.heap, l.heap_len);
    return *why = no, DVMP_KERNEL;
  }
  rec *r = claim();
  if (!r) {
    dvm_lease_drop(&l.lease);
    if (l.heap) dvm_real_munmap(l.heap, l.heap_len);
    return *why = "the preload's table of mappings is full", DVMP_KERNEL;
  }
  int tracked = kind == DVM_VIEW_RW && m->view_span[kind].tracked;
  const char *sys = "";
  r->m = m;
  r->kind = kind;
  r->len = maplen;
  r->writable = writable;
  r->nosync = nosync;
  r->tracked = tracked;
  r->batching = (flags & MAP_DAXVM_BATCHING) != 0;
  r->attached = l.n == 1 && !dvmp_no_attach; /* DAXVM_ATTACH=0: every mapping its own span */
  rc = 0;
  if (r->attached) {
    r->base = l.runs[0].offset;
    r->addr = (uintptr_t)view + r->base;
    r->lease = l.lease;
    uint64_t pages;
    /* Arm the pages (and write back what earlier stores left there): from now on, writes are tracked. */
    if (tracked) rc = dvm_span_written(&m->view_span[kind], r->base, maplen, 1, 1, &pages, &sys);
    if (rc < 0) dvm_lease_drop(&r->lease);
  } else {
    r->span.embedded = DVM_SPAN_STORAGE_USED;
    rc = dvm_span_stitch_in(&r->span, m->p, l.runs, l.n, writable, 0, (flags & MAP_DAXVM_EPHEMERAL) != 0, tracked,
                            &l.lease, &sys);
    if (rc < 0) dvm_lease_drop(&l.lease);
    else {
      r->addr = (uintptr_t)r->span.addr;
      madvise(r->span.addr, r->span.reserved, MADV_DONTFORK);
    }
  }
  if (l.heap) dvm_real_munmap(l.heap, l.heap_len);
  if (rc < 0) {
    unclaim(r);
    snprintf(reason, sizeof reason, "%s failed (%s)", sys, strerror(-rc));
    return *why = reason, DVMP_KERNEL;
  }
  r->path[0] = 0;
  if (writable) { /* msync moves the file's mtime by its path, as the Node library does */
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, r->path, sizeof r->path);
    r->path[n > 0 && n < (ssize_t)sizeof r->path && r->path[0] == '/' ? n : 0] = 0;
    if (n >= 10 && n < (ssize_t)sizeof r->path && strcmp(r->path + n - 10, " (deleted)") == 0) r->path[0] = 0;
  }
  __atomic_store_n(&r->state, R_LIVE, __ATOMIC_RELEASE);
  DVMP_SAY("mmap %s [%llu, +%llu) %s -> %s %p: %u run(s), %s%s%s", dvmp_debug ? fd_path(fd, pbuf, sizeof pbuf) : "",
           (unsigned long long)off, (unsigned long long)len, writable ? "rw" : "r",
           r->attached ? "attached" : r->span.kind == DVM_SPAN_HEAP ? "stitched (ephemeral heap)" : "stitched",
           (void *)r->addr, l.n, !writable ? "read-only view" : nosync ? "nosync (knob msync 0)" : tracked ? "dirty pages tracked" : "untracked (whole-range msync)",
           r->batching ? ", batching" : "", ns ? ", table from the shared namespace" : ", table from the pool (user.daxvm.ppt)");
  (void)addr;
  return (void *)r->addr;
}

/* The live mapping that starts at addr, taken (state busy) by this thread; NULL if none. */
static rec *take_live(uintptr_t addr)
{
  unsigned h = __atomic_load_n(&high, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < h; i++) {
    rec *r = &recs[i];
    int st = R_LIVE;
    if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == R_LIVE && r->addr == addr &&
        __atomic_compare_exchange_n(&r->state, &st, R_BUSY, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
      return r;
  }
  return NULL;
}

int dvmp_touches_mapping(uintptr_t addr, uint64_t len)
{
  unsigned h = __atomic_load_n(&high, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < h; i++) {
    rec *r = &recs[i];
    int st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
    if (st == R_FREE) continue;
    if (st == R_ZOMBIE && __atomic_load_n(&r->span.embedded, __ATOMIC_ACQUIRE) == DVM_SPAN_STORAGE_FREE) continue;
    uintptr_t a = r->addr;
    uint64_t l = r->attached ? r->len : (st == R_ZOMBIE ? r->span.reserved : r->len);
    if (a && addr < a + l && a < addr + len) return 1;
  }
  return 0;
}

int dvmp_unmap(void *addr, size_t len, int *rc)
{
  uint64_t maplen = ((uint64_t)len + PAGE - 1) & ~(PAGE - 1);
  rec *r = take_live((uintptr_t)addr);
  if (!r) return 0;
  if (r->len != maplen) {
    __atomic_store_n(&r->state, R_LIVE, __ATOMIC_RELEASE);
    DVMP_SAY("munmap %p +%llu: EINVAL (a DaxVM mapping of %llu bytes is unmapped whole)", addr,
             (unsigned long long)len, (unsigned long long)r->len);
    *rc = -EINVAL;
    return 1;
  }
  *rc = 0;
  if (r->attached) {
    /* Nothing to unmap: the memory is the process's view of the pool; the blocks go back to the file system. */
    dvm_lease_drop(&r->lease);
    DVMP_SAY("munmap %p +%llu: attached, lease dropped", addr, (unsigned long long)len);
    unclaim(r);
    return 1;
  }
  if (r->batching) {
    dvm_pool_info info;
    uint64_t max = 33;
    if (dvm_pool_info_read(r->m->view[DVM_VIEW_RO], r->m->p->size, &info) == 0 && info.knob_zombie_max_pages)
      max = info.knob_zombie_max_pages;
    __atomic_store_n(&r->state, R_ZOMBIE, __ATOMIC_RELEASE);
    uint64_t dropped = dvm_zombie_add(&r->span, max);
    dvm_span_release(&r->span); /* ours; the zombie list holds its own until the batch is dropped */
    DVMP_SAY("munmap %p +%llu: zombie%s%llu dropped (zombie_max_pages %llu)", addr, (unsigned long long)len,
             dropped ? ", batch full: " : ", ", (unsigned long long)dropped, (unsigned long long)max);
    return 1;
  }
  dvm_span_release(&r->span); /* the last reference: munmap (or back to the heap), then the lease */
  int ok = __atomic_load_n(&r->span.embedded, __ATOMIC_ACQUIRE) == DVM_SPAN_STORAGE_FREE && !r->span.addr;
  DVMP_SAY("munmap %p +%llu: stitched, %s", addr, (unsigned long long)len, ok ? "unmapped, lease dropped" : "unmap failed");
  if (!ok) *rc = -EINVAL;
  unclaim(r);
  return 1;
}

int dvmp_sync(void *addr, size_t len, int flags, int *rc)
{
  uintptr_t a = (uintptr_t)addr;
  unsigned h = __atomic_load_n(&high, __ATOMIC_ACQUIRE);
  rec *r = NULL;
  for (unsigned i = 0; i < h && !r; i++)
    if (__atomic_load_n(&recs[i].state, __ATOMIC_ACQUIRE) == R_LIVE && a >= recs[i].addr && a < recs[i].addr + recs[i].len)
      r = &recs[i];
  if (!r) return 0;
  uint64_t off = a - r->addr, n = len;
  if (off + n > r->len) n = r->len - off;
  *rc = 0;
  uint64_t pages = 0;
  const char *how;
  const char *sys = "";
  if (!r->writable) how = "read-only: nothing to write back";
  else if (r->nosync) how = "nosync mode (knob msync 0): the program persists its own stores";
  else if (!(flags & MS_SYNC)) how = "MS_ASYNC: nothing to wait for";
  else if (r->tracked) {
    dvm_span *s = r->attached ? &r->m->view_span[r->kind] : &r->span;
    *rc = dvm_span_written(s, (r->attached ? r->base : 0) + off, n, 1, 1, &pages, &sys);
    how = "written pages";
  } else {
    *rc = dvm_real_msync(addr, n, MS_SYNC) == 0 ? 0 : -errno;
    pages = (n + PAGE - 1) / PAGE;
    how = "whole range";
  }
  /*
   * As the Node library: the stores are in the pool, but with no daemon serving it (its lock on the pool
   * gone) nothing will make them the file's for sure: ENOTCONN. Asked only when pages were written
   * back (an empty msync makes no extra system call): a non-blocking flock, let go at once.
   */
  const char *orphan = "";
  if (*rc == 0 && pages > 0 && r->m->p && r->m->p->fd_ro >= 0) {
    int lk = dvm_flock(r->m->p->fd_ro, DVM_LOCK_EXCLUSIVE);
    if (lk == 0) {
      dvm_flock(r->m->p->fd_ro, DVM_LOCK_UNLOCK);
      *rc = -ENOTCONN;
      orphan = " (ENOTCONN: no daemon serves the pool)";
    }
  }
  /* The stores never went through the file system: move the file's mtime (one SETATTR), as the library does. */
  const char *touched = "";
  if (*rc == 0 && pages > 0 && r->path[0]) {
    const struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_NOW}};
    touched = utimensat(AT_FDCWD, r->path, ts, 0) == 0 ? ", mtime moved" : "";
  }
  DVMP_SAY("msync %p +%llu: %s, %llu page(s) written back%s%s%s", addr, (unsigned long long)len, how,
           (unsigned long long)pages, *rc < 0 && !*orphan ? " (failed)" : "", orphan, touched);
  return 1;
}

void dvmp_mappings_after_fork_child(void)
{
  /* The parent's mappings were not inherited (MADV_DONTFORK), nor are its leases ours. */
  memset(recs, 0, sizeof(rec) * high);
  high = count = 0;
}
