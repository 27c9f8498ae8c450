/* Process-wide state of the client library (see process.h). */
#define _GNU_SOURCE
#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

void dvm_lock(void) { pthread_mutex_lock(&lock); }
void dvm_unlock(void) { pthread_mutex_unlock(&lock); }

static dvm_features features;
static pthread_once_t probed = PTHREAD_ONCE_INIT;
static void probe(void) { dvm_probe(&features); }

const dvm_features *dvm_features_get(void)
{
  pthread_once(&probed, probe);
  return &features;
}

int dvm_tracking_available(void)
{
  const dvm_features *f = dvm_features_get();
  const char *off = getenv("DAXVM_NO_TRACKING");
  if (off && *off && strcmp(off, "0") != 0) return 0;
  return f->uffd_errno == 0 && f->wp_async && f->scan_errno == 0;
}

static int uffd = -1, pagemap = -1;

int dvm_process_uffd(int *fd_out)
{
  if (uffd < 0) {
    if (!dvm_tracking_available()) return -EOPNOTSUPP;
    int rc = dvm_uffd_open(UFFD_FEATURE_WP_ASYNC |
                               (features.wp_unpopulated ? UFFD_FEATURE_WP_UNPOPULATED : 0),
                           &uffd);
    if (rc < 0) return rc;
  }
  *fd_out = uffd;
  return 0;
}

int dvm_process_pagemap(int *fd_out)
{
  if (pagemap < 0) {
    pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap < 0) return -errno;
  }
  *fd_out = pagemap;
  return 0;
}

/* ---- pools ---------------------------------------------------------------- */

#define MAX_POOLS 16
static dvm_pool pools[MAX_POOLS];
static int npools;

/* Views are aligned to 1 GiB when the pool is that big (PUD-sized runs), else 2 MiB. */
static uint64_t view_align(uint64_t size) { return size >= (1ull << 30) ? (1ull << 30) : DVM_SLOT; }

int dvm_pool_view(const char *path, enum dvm_view kind, dvm_pool **pool_out,
                  void **addr_out)
{
  struct stat st;
  if (stat(path, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  dvm_pool *p = NULL;
  /* Keyed by device and inode: an entry keeps its file open, so its inode number cannot be reused. */
  for (int i = 0; i < npools; i++)
    if (pools[i].dev == st.st_dev && pools[i].ino == st.st_ino) p = &pools[i];
  if (!p) {
    if (npools == MAX_POOLS) return -EMFILE;
    p = &pools[npools];
    memset(p, 0, sizeof *p);
    p->dev = st.st_dev;
    p->ino = st.st_ino;
    p->size = (uint64_t)st.st_size & ~4095ull;
    p->fd_ro = p->fd_rw = -1;
    npools++;
  }
  if (p->fd_ro < 0 && p->fd_rw < 0) {
    /* Nothing of it is open yet (an earlier open failed): take the file as it is now. */
    p->size = (uint64_t)st.st_size & ~4095ull;
    if (p->size == 0) return -EINVAL;
  }
  if (!p->view[kind]) {
    int writable = kind != DVM_VIEW_RO;
    int *fdp = writable ? &p->fd_rw : &p->fd_ro;
    if (*fdp < 0) {
      int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
      if (fd < 0) return -errno;
      *fdp = fd;
    }
    void *addr;
    int rc = dvm_reserve(p->size, view_align(p->size), &addr);
    if (rc < 0) return rc;
    rc = dvm_map_fixed(addr, p->size, *fdp, 0, writable, 0);
    /* Huge pages where the kernel can give them (THP for file mappings); a refusal only costs speed. */
    if (rc == 0) madvise(addr, p->size, MADV_HUGEPAGE);
    if (rc == 0 && kind == DVM_VIEW_RW && dvm_tracking_available()) {
      /* Register the whole view once and arm every page: writes after this are tracked. */
      int fd;
      rc = dvm_process_uffd(&fd);
      if (rc == 0) rc = dvm_uffd_register_wp(fd, addr, p->size);
      if (rc == 0) rc = dvm_uffd_writeprotect(fd, addr, p->size, 1);
      if (rc == 0) p->tracked = 1;
    }
    if (rc < 0) {
      munmap(addr, p->size);
      return rc;
    }
    p->view[kind] = addr;
  }
  *pool_out = p;
  *addr_out = p->view[kind];
  return 0;
}

int dvm_pool_leases(dvm_pool *p, dvm_lease_table **out)
{
  /* Once opened the table stays until a daemon retires it at an unmount: no lock on this hot path of every map. */
  *out = __atomic_load_n(&p->leases, __ATOMIC_ACQUIRE);
  if (*out && !dvm_lease_table_retired(*out)) return 0;
  dvm_lock();
  int rc = p->leases_err;
  if ((!p->leases || dvm_lease_table_retired(p->leases)) && !rc) {
    int fd = p->fd_rw >= 0 ? p->fd_rw : p->fd_ro;
    dvm_lease_table *t = NULL;
    rc = fd < 0 ? -EBADF : dvm_lease_table_open(fd, &t);
    if (rc == 0) __atomic_store_n(&p->leases, t, __ATOMIC_RELEASE);
    else if (rc != -ENOENT) p->leases_err = rc; /* no table yet (ENOENT): a daemon may make one later */
  }
  *out = p->leases;
  dvm_unlock();
  return *out ? 0 : rc;
}

void dvm_process_after_fork(void)
{
  for (int i = 0; i < npools; i++) {
    for (int k = 0; k < DVM_VIEWS; k++) pools[i].view[k] = NULL;
    pools[i].tracked = 0;
  }
  if (uffd >= 0) close(uffd);
  if (pagemap >= 0) close(pagemap);
  uffd = pagemap = -1;
}

/* ---- the ephemeral heap ---------------------------------------------------- */

typedef struct {
  uint64_t start, count; /* in slots */
} extent;

static char *heap_base;
static uint64_t heap_slots, heap_top, heap_used;
static extent *holes; /* free extents below heap_top, sorted, coalesced */
static uint64_t nholes;

static int heap_init(void)
{
  if (heap_base) return 0;
  uint64_t size = 4ull << 30; /* upstream's per-process region */
  const char *env = getenv("DAXVM_EPHEMERAL_HEAP");
  if (env && *env) {
    uint64_t v = strtoull(env, NULL, 10);
    if (v >= DVM_SLOT) size = v & ~(DVM_SLOT - 1);
  }
  void *addr;
  int rc = dvm_reserve(size, DVM_SLOT, &addr);
  if (rc < 0) return rc;
  heap_slots = size / DVM_SLOT;
  holes = calloc(heap_slots / 2 + 1, sizeof *holes);
  if (!holes) {
    munmap(addr, size);
    return -ENOMEM;
  }
  __atomic_store_n(&heap_base, (char *)addr, __ATOMIC_RELEASE);
  return 0;
}

int dvm_heap_alloc(uint64_t length, void **addr_out, uint64_t *reserved_out)
{
  int rc = heap_init();
  if (rc < 0) return rc;
  uint64_t want = (length + DVM_SLOT - 1) / DVM_SLOT;
  uint64_t at = UINT64_MAX;
  for (uint64_t i = 0; i < nholes; i++) {
    if (holes[i].count < want) continue;
    at = holes[i].start; /* first fit */
    holes[i].start += want;
    holes[i].count -= want;
    if (holes[i].count == 0) {
      memmove(&holes[i], &holes[i + 1], (nholes - i - 1) * sizeof *holes);
      nholes--;
    }
    break;
  }
  if (at == UINT64_MAX) {
    if (heap_slots - heap_top < want) return -ENOMEM;
    at = heap_top; /* the bump pointer */
    heap_top += want;
  }
  heap_used += want;
  *addr_out = heap_base + at * DVM_SLOT;
  *reserved_out = want * DVM_SLOT;
  return 0;
}

void dvm_heap_free(void *addr, uint64_t reserved)
{
  uint64_t start = (uint64_t)((char *)addr - heap_base) / DVM_SLOT;
  uint64_t count = reserved / DVM_SLOT;
  heap_used -= count;
  uint64_t i = 0;
  while (i < nholes && holes[i].start < start) i++;
  memmove(&holes[i + 1], &holes[i], (nholes - i) * sizeof *holes);
  holes[i] = (extent){start, count};
  nholes++;
  /* coalesce with the next, then the previous */
  if (i + 1 < nholes && holes[i].start + holes[i].count == holes[i + 1].start) {
    holes[i].count += holes[i + 1].count;
    memmove(&holes[i + 1], &holes[i + 2], (nholes - i - 2) * sizeof *holes);
    nholes--;
  }
  if (i > 0 && holes[i - 1].start + holes[i - 1].count == holes[i].start) {
    holes[i - 1].count += holes[i].count;
    memmove(&holes[i], &holes[i + 1], (nholes - i - 1) * sizeof *holes);
    nholes--;
    i--;
  }
  /* a hole that reaches the bump pointer lowers it */
  if (holes[i].start + holes[i].count == heap_top) {
    heap_top = holes[i].start;
    nholes--;
  }
}

void dvm_heap_stats(uint64_t *size, uint64_t *used, uint64_t *top)
{
  *size = heap_slots * DVM_SLOT;
  *used = heap_used * DVM_SLOT;
  *top = heap_top * DVM_SLOT;
}

void dvm_heap_range(void **base, uint64_t *size)
{
  char *b = __atomic_load_n(&heap_base, __ATOMIC_ACQUIRE);
  *base = b;
  *size = b ? heap_slots * DVM_SLOT : 0;
}
