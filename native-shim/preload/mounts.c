/*
 * The daxvm mounts the preload has seen, by mount id (statx on the fd: no
 * round trip to any file system), found once in /proc/self/mountinfo by
 * device number and type; the pool path from the mount's `.daxvm/pool`
 * (one read through the mount, once per mount) or its fsname; the pool's
 * views, mapped once per process and kept out of forked children (a child
 * maps its own).
 */
#define _GNU_SOURCE
#include "preload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"

#define MAX_MOUNTS 64
static dvmp_mount mounts[MAX_MOUNTS];
static unsigned nmounts; /* atomic: entries [0, nmounts) are complete */
static pthread_mutex_t mounts_lock = PTHREAD_MUTEX_INITIALIZER;

static char info_buf[512 * 1024]; /* /proc/self/mountinfo, read under mounts_lock */

/* The kernel escapes space, tab, newline and backslash in mountinfo as \ooo. */
static void unescape(const char *from, size_t n, char *to, size_t room)
{
  size_t j = 0;
  for (size_t i = 0; i < n && j + 1 < room; i++) {
    if (from[i] == '\\' && i + 3 < n && from[i + 1] >= '0' && from[i + 1] <= '3') {
      to[j++] = (char)((from[i + 1] - '0') * 64 + (from[i + 2] - '0') * 8 + (from[i + 3] - '0'));
      i += 3;
    } else {
      to[j++] = from[i];
    }
  }
  to[j] = 0;
}

/* Field k (0-based, space-separated) of the line [s, e): its start and length. */
static int field(const char *s, const char *e, int k, const char **f, size_t *n)
{
  const char *p = s;
  for (int i = 0; i < k; i++) {
    p = memchr(p, ' ', (size_t)(e - p));
    if (!p) return 0;
    p++;
  }
  const char *q = memchr(p, ' ', (size_t)(e - p));
  *f = p;
  *n = (size_t)((q ? q : e) - p);
  return 1;
}

/* Fill m from the mountinfo line of the device, if it is a daxvm mount. */
static int find_in_mountinfo(const dvm_quick_stat *q, dvmp_mount *m)
{
  int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, info_buf + len, sizeof info_buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
    if (len == sizeof info_buf - 1) break;
  }
  close(fd);
  char dev[32];
  int dl = snprintf(dev, sizeof dev, "%u:%u", q->dev_major, q->dev_minor);
  for (const char *s = info_buf, *end = info_buf + len; s < end;) {
    const char *e = memchr(s, '\n', (size_t)(end - s));
    if (!e) e = end;
    const char *f, *sep;
    size_t n;
    /* id parent maj:min root mountpoint options [optional...] - fstype source superoptions */
    if (field(s, e, 2, &f, &n) && n == (size_t)dl && memcmp(f, dev, n) == 0 &&
        (sep = memmem(s, (size_t)(e - s), " - ", 3)) != NULL) {
      const char *ft, *src, *mp;
      size_t ftn, srcn, mpn;
      if (field(sep + 3, e, 0, &ft, &ftn) && ftn == 10 && memcmp(ft, "fuse.daxvm", 10) == 0 &&
          field(sep + 3, e, 1, &src, &srcn) && field(s, e, 4, &mp, &mpn)) {
        m->daxvm = 1;
        unescape(mp, mpn, m->mountpoint, sizeof m->mountpoint);
        unescape(src, srcn, m->pool, sizeof m->pool);
        return 0;
      }
    }
    s = e + 1;
  }
  return 0;
}

/* The pool path as the mount says it (.daxvm/pool), else the fsname already in m->pool. */
static void read_pool_path(dvmp_mount *m)
{
  char path[1100], buf[1024];
  snprintf(path, sizeof path, "%s/.daxvm/pool", m->mountpoint);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
  if (n <= 0 || buf[0] != '/') return;
  memcpy(m->pool, buf, (size_t)n);
  m->pool[n] = 0;
}

int dvmp_mount_of(const dvm_quick_stat *q, dvmp_mount **out)
{
  unsigned n = __atomic_load_n(&nmounts, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < n; i++)
    if (mounts[i].mnt_id == q->mnt_id && mounts[i].unique == q->unique) {
      *out = mounts[i].daxvm ? &mounts[i] : NULL;
      return 0;
    }
  pthread_mutex_lock(&mounts_lock);
  n = __atomic_load_n(&nmounts, __ATOMIC_ACQUIRE);
  int rc = 0;
  dvmp_mount *m = NULL;
  for (unsigned i = 0; i < n && !m; i++)
    if (mounts[i].mnt_id == q->mnt_id && mounts[i].unique == q->unique) m = &mounts[i];
  if (!m) {
    if (n == MAX_MOUNTS) {
      rc = -EMFILE;
    } else {
      m = &mounts[n];
      memset(m, 0, sizeof *m);
      m->mnt_id = q->mnt_id;
      m->unique = q->unique;
      rc = find_in_mountinfo(q, m);
      if (rc == 0 && m->daxvm) read_pool_path(m);
      if (rc == 0) {
        __atomic_store_n(&nmounts, n + 1, __ATOMIC_RELEASE);
        DVMP_SAY("mount id %llu (%s): %s%s%s", (unsigned long long)q->mnt_id, q->unique ? "unique" : "reusable",
                 m->daxvm ? "daxvm, pool " : "not daxvm", m->daxvm ? m->pool : "", "");
      } else {
        m = NULL;
      }
    }
  }
  pthread_mutex_unlock(&mounts_lock);
  if (rc < 0) return rc;
  *out = m && m->daxvm ? m : NULL;
  return 0;
}

/* The pool views' address ranges, for dvmp_touches_reserved. */
static struct { uintptr_t start; uint64_t len; } ranges[MAX_MOUNTS * DVM_VIEWS];
static unsigned nranges; /* atomic */

int dvmp_mount_view(dvmp_mount *m, enum dvm_view kind, void **addr_out)
{
  void *v = __atomic_load_n(&m->view[kind], __ATOMIC_ACQUIRE);
  if (v) {
    *addr_out = v;
    return 0;
  }
  dvm_lock();
  int rc = m->view_err[kind];
  v = m->view[kind];
  if (!v && rc == 0) {
    dvm_pool *p = NULL;
    rc = dvm_pool_view(m->pool, kind, &p, &v);
    if (rc == 0) {
      /* Upstream's rule: DaxVM mappings are not inherited by fork (nor is the view they live in). */
      madvise(v, p->size, MADV_DONTFORK);
      int known = 0;
      unsigned nr = __atomic_load_n(&nranges, __ATOMIC_ACQUIRE);
      for (unsigned i = 0; i < nr; i++) known |= ranges[i].start == (uintptr_t)v;
      if (!known && nr < sizeof ranges / sizeof ranges[0]) {
        ranges[nr].start = (uintptr_t)v;
        ranges[nr].len = p->size;
        __atomic_store_n(&nranges, nr + 1, __ATOMIC_RELEASE);
      }
      dvm_span_pool_view(&m->view_span[kind], p, kind, v);
      m->p = p;
      __atomic_store_n(&m->view[kind], v, __ATOMIC_RELEASE);
    } else {
      m->view_err[kind] = rc;
    }
  }
  dvm_unlock();
  if (rc < 0) return rc;
  *addr_out = v;
  return 0;
}

int dvmp_touches_reserved(uintptr_t addr, uint64_t len)
{
  unsigned nr = __atomic_load_n(&nranges, __ATOMIC_ACQUIRE);
  for (unsigned i = 0; i < nr; i++)
    if (addr < ranges[i].start + ranges[i].len && ranges[i].start < addr + len) return 1;
  void *hb;
  uint64_t hs;
  dvm_heap_range(&hb, &hs);
  return hs && addr < (uintptr_t)hb + hs && (uintptr_t)hb < addr + len;
}

void dvmp_mounts_before_fork(void)
{
  pthread_mutex_lock(&mounts_lock);
  dvm_lock();
}

void dvmp_mounts_after_fork(int child)
{
  if (child) {
    /* The views were MADV_DONTFORK: none is left here; they are mapped again on first use. */
    for (unsigned i = 0; i < nmounts; i++) {
      dvmp_mount *m = &mounts[i];
      memset(m->view, 0, sizeof m->view);
      memset(m->view_err, 0, sizeof m->view_err);
      memset(m->view_span, 0, sizeof m->view_span);
      m->ns_bound = 0; /* the child walks again once */
    }
    nranges = 0;
    dvm_process_after_fork();
    dvm_zombie_forget();
  }
  dvm_unlock();
  pthread_mutex_unlock(&mounts_lock);
}
