/*
 * Where a file's blocks are, for the preload's mmap, and a lease on them,
 * the source checked again after the lease is taken (docs/format.md,
 * "Leases: the ordering argument"). Two sources: the shared namespace the
 * daemon publishes (issue 10, core/ns.h: no request to the daemon), else the
 * daemon's user.daxvm.ppt (one GETXATTR) and the file's persistent page
 * table read from the pool (core/table.c).
 */
#define _GNU_SOURCE
#include "preload.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../core/ns.h"
#include "../include/daxvm_format.h"
#include "real.h"

#define PAGE 4096ull
#define LEASE_TRIES 8

/* The file's user.daxvm.ppt, parsed (one request to the daemon: fgetxattr, no path lookup). */
int dvmp_read_ppt(int fd, unsigned long long v[7])
{
  char buf[256];
  ssize_t n;
  do n = fgetxattr(fd, DAXVM_PPT_XATTR, buf, sizeof buf - 1);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  buf[n] = 0;
  return sscanf(buf, DAXVM_PPT_TEXT_FORMAT, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7 ? 0 : -EPROTO;
}

/* why, filled with what failed and the errno's text (rc < 0). */
static const char *because(char why[160], const char *what, int rc)
{
  snprintf(why, 160, "%s (%s)", what, strerror(-rc));
  return why;
}

/* Scratch room for many runs, from the kernel (not malloc): freed by the caller with dvm_real_munmap. */
static void *scratch(uint64_t bytes) { return dvm_real_mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); }

/* Read the table of [first, end), lease its blocks, check it did not change. NULL or why not. */
const char *dvmp_lease_table(dvmp_mount *m, const void *ro, const dvm_pool_info *info, uint32_t ino, uint32_t gen,
                               uint64_t first, uint64_t end, int writable, dvmp_leased *out)
{
  static __thread char why[160];
  out->runs = out->stack;
  unsigned room = DVMP_STACK_RUNS;
  dvm_lease_table *lt;
  int rc = dvm_pool_leases(m->p, &lt);
  if (rc < 0) return because(why, "no lease table for the pool", rc);
  for (int attempt = 0; attempt < LEASE_TRIES; attempt++) {
    dvm_table_result t;
    dvm_table_problem p = dvm_table_read(ro, info, ino, gen, first, end, out->runs, room, &t);
    if (p != DVM_TABLE_OK) return dvm_table_problem_text(p);
    if (t.holes > 0) {
      snprintf(why, sizeof why, "%llu page(s) of the range have no block (holes, or past the end of the file)",
               (unsigned long long)t.holes);
      return why;
    }
    if (t.runs > room) { /* fragmented: room for all of them, and read again */
      if (out->heap) dvm_real_munmap(out->heap, out->heap_len);
      out->heap_len = ((uint64_t)t.runs * (sizeof(dvm_run) + sizeof(dvm_block_run)) + PAGE - 1) & ~(PAGE - 1);
      out->heap = scratch(out->heap_len);
      if (out->heap == MAP_FAILED) {
        out->heap = NULL;
        return "no memory for the runs";
      }
      out->runs = out->heap;
      room = t.runs;
      attempt--;
      continue;
    }
    out->n = t.runs;
    dvm_block_run bstack[DVMP_STACK_RUNS], *b = out->heap ? (dvm_block_run *)(out->runs + room) : bstack;
    for (unsigned i = 0; i < t.runs; i++) b[i] = (dvm_block_run){out->runs[i].offset / PAGE, out->runs[i].length / PAGE};
    rc = dvm_lease_take(lt, b, t.runs, ino, gen, writable, &out->lease);
    out->vouched = rc == -EAGAIN;
    if (rc < 0) return because(why, "no lease on the pool's blocks", rc);
    if (dvm_table_unchanged(ro, info, ino, t.seq)) return NULL;
    dvm_lease_drop(&out->lease);
  }
  return "the table kept changing while being leased";
}


int dvmp_ns_of_fd(int fd, const dvm_quick_stat *q, int writable, dvmp_mount *m, dvm_ns_file *f)
{
  int want = DVM_NS_READ | (writable ? DVM_NS_WRITE : 0);
  /* readlink of /proc/self/fd and the walk cost more than the rest of an attach: skip them when the region is known. */
  uint64_t bound = __atomic_load_n(&m->ns_bound, __ATOMIC_ACQUIRE);
  if (bound && dvm_ns_file_of_ino((int)(uint32_t)bound - 1, (uint32_t)(bound >> 32), q->ino, want, f) == 0) return 1;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path);
  if (n <= 0 || n >= (ssize_t)sizeof path || path[0] != '/') return 0;
  if (dvm_ns_resolve(path, (size_t)n, want, f) != 0) return 0;
  const char *mp, *pool;
  uint64_t id;
  if (f->ino != q->ino || dvm_ns_mount_info(f->mount, &mp, &pool, &id) != 0 || strcmp(pool, m->pool) != 0) return 0;
  /* The walk from this mount's file reached this region: later fds of the mount go by inode number. */
  __atomic_store_n(&m->ns_bound, ((uint64_t)f->region_gen << 32) | (uint32_t)(f->mount + 1), __ATOMIC_RELEASE);
  return 1;
}

const char *dvmp_lease_ns(dvmp_mount *m, dvm_ns_file *f, uint64_t first, uint64_t end, int writable, dvmp_leased *out,
                          int *retry)
{
  static __thread char why[160];
  dvm_lease_table *lt;
  int rc = dvm_pool_leases(m->p, &lt);
  if (rc < 0) return because(why, "no lease table for the pool", rc);
  dvm_ns_run nr[DVMP_STACK_RUNS];
  for (int attempt = 0; attempt < LEASE_TRIES; attempt++) {
    unsigned n = 0;
    uint64_t holes = 0;
    rc = dvm_ns_runs(f, first, end, nr, DVMP_STACK_RUNS, &n, &holes);
    if (rc != 0) { /* changed since resolved, too many runs, not published: the pool's own table answers */
      *retry = 1;
      return dvm_ns_reason(rc > 0 ? rc : DVM_NS_BUSY);
    }
    if (holes > 0) {
      snprintf(why, sizeof why, "%llu page(s) of the range have no block (holes, or past the end of the file)",
               (unsigned long long)holes);
      return why;
    }
    dvm_block_run b[DVMP_STACK_RUNS];
    for (unsigned i = 0; i < n; i++) {
      out->stack[i] = (dvm_run){nr[i].physical * PAGE, nr[i].count * PAGE};
      b[i] = (dvm_block_run){nr[i].physical, nr[i].count};
    }
    out->runs = out->stack;
    out->n = n;
    rc = dvm_lease_take(lt, b, n, f->ino, f->generation, writable, &out->lease);
    out->vouched = rc == -EAGAIN;
    if (rc < 0) return because(why, "no lease on the pool's blocks", rc);
    if (dvm_ns_unchanged(f)) return NULL;
    dvm_lease_drop(&out->lease);
  }
  *retry = 1;
  return "the namespace's table kept changing while being leased";
}
