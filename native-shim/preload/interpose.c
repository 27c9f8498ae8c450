/*
 * libdaxvm-preload.so: DaxVM's mmap flags for unmodified, dynamically linked
 * C programs (LD_PRELOAD=$(daxvm preload-path) prog, or `daxvm run -- prog`).
 * See docs/preload.md. The only symbols it exports are the calls it
 * intercepts: mmap (and mmap64), munmap, msync, mprotect, mremap.
 *
 * - mmap with MAP_DAXVM (0x400000), MAP_DAXVM_EPHEMERAL (0x4000000, implies
 *   it) or MAP_DAXVM_BATCHING (0x200000), MAP_SHARED, on a file of a daxvm
 *   mount: memory of the pool (mapping.c); everything else, and anything the
 *   DaxVM path cannot serve, goes to the kernel with the DaxVM bits taken
 *   off. DAXVM_MMAP=all: every shared mapping of a daxvm file takes the
 *   DaxVM path, flags or not.
 * - munmap of one of ours: the lease dropped (attached), a zombie
 *   (batching), or the span unmapped; msync: the written pages.
 * - mprotect, mremap, and a partial munmap of one of ours, or of the pool
 *   views and the ephemeral heap the preload holds: EINVAL, as upstream
 *   refuses them on DaxVM mappings.
 * - fork: DaxVM mappings are not inherited (MADV_DONTFORK, as upstream); the
 *   child starts afresh (its own views, leases and mappings).
 * DAXVM_DEBUG=1: one line per decision on stderr. DAXVM_ATTACH=0: stitch
 * every mapping (its own VMA: a store past its end faults) instead of
 * attaching a contiguous one to the pool view.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "preload.h"
#include "real.h"

#define EXPORT __attribute__((visibility("default")))

int dvmp_all, dvmp_no_attach;

static void before_fork(void) { dvmp_mounts_before_fork(); }
static void after_fork_parent(void) { dvmp_mounts_after_fork(0); }
static void after_fork_child(void)
{
  dvmp_mounts_after_fork(1);
  dvmp_mappings_after_fork_child();
}

__attribute__((constructor)) static void init(void)
{
  const char *d = getenv("DAXVM_DEBUG");
  dvmp_debug = d && *d && strcmp(d, "0") != 0;
  const char *all = getenv("DAXVM_MMAP");
  dvmp_all = all && strcmp(all, "all") == 0;
  const char *attach = getenv("DAXVM_ATTACH");
  dvmp_no_attach = attach && strcmp(attach, "0") == 0;
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  DVMP_SAY("loaded%s", dvmp_all ? " (DAXVM_MMAP=all)" : "");
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
  int bits = (flags & MAP_HUGETLB) ? 0 : flags & DVMP_BITS;
  int shared = (flags & MAP_TYPE) == MAP_SHARED || (flags & MAP_TYPE) == MAP_SHARED_VALIDATE;
  if (!bits && !(dvmp_all && shared && fd >= 0 && !(flags & MAP_ANONYMOUS)))
    return dvm_real_mmap(addr, len, prot, flags, fd, off);
  const char *why = NULL;
  void *p = dvmp_map(addr, len, prot, flags, fd, off, &why);
  if (p != DVMP_KERNEL) return p;
  /* The kernel's mmap, unchanged but for the DaxVM bits it does not know. */
  p = dvm_real_mmap(addr, len, prot, flags & ~bits, fd, off);
  if (dvmp_debug) {
    int e = errno;
    DVMP_SAY("mmap fd %d [%lld, +%zu) flags 0x%x -> kernel (%s): %p%s%s", fd, (long long)off, len, flags, why, p,
             p == MAP_FAILED ? " " : "", p == MAP_FAILED ? strerror(e) : "");
    errno = e;
  }
  return p;
}

/* Ours, or memory the preload holds for itself. */
static int touches_ours(void *addr, size_t len)
{
  return dvmp_touches_mapping((uintptr_t)addr, len) || dvmp_touches_reserved((uintptr_t)addr, len);
}

static int refuse(const char *call, void *addr, size_t len)
{
  DVMP_SAY("%s %p +%zu: EINVAL (a DaxVM mapping, or memory the preload holds: refused as upstream does)", call, addr, len);
  errno = EINVAL;
  return -1;
}

EXPORT int munmap(void *addr, size_t len)
{
  if (dvmp_any()) {
    int rc;
    if (dvmp_unmap(addr, len, &rc)) {
      if (rc < 0) {
        errno = -rc;
        return -1;
      }
      return 0;
    }
  }
  if (touches_ours(addr, len)) return refuse("munmap", addr, len);
  return dvm_real_munmap(addr, len);
}

EXPORT int msync(void *addr, size_t len, int flags)
{
  if (dvmp_any()) {
    int rc;
    if (dvmp_sync(addr, len, flags, &rc)) {
      if (rc < 0) {
        errno = -rc;
        return -1;
      }
      return 0;
    }
  }
  return dvm_real_msync(addr, len, flags);
}

EXPORT int mprotect(void *addr, size_t len, int prot)
{
  if (touches_ours(addr, len)) return refuse("mprotect", addr, len);
  return dvm_real_mprotect(addr, len, prot);
}

EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
  void *new_addr = NULL;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void *);
    va_end(ap);
  }
  if (touches_ours(old, old_len)) {
    refuse("mremap", old, old_len);
    return MAP_FAILED;
  }
  return dvm_real_mremap(old, old_len, new_len, flags, new_addr);
}
