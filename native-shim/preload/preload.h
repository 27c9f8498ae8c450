/*
 * Internals of the preload library (libdaxvm-preload.so): the daxvm mounts
 * it has seen (mounts.c), its mappings (mapping.c), the interceptors
 * (interpose.c). See docs/preload.md.
 */
#ifndef DAXVM_PRELOAD_H
#define DAXVM_PRELOAD_H

#include <stdint.h>
#include <sys/types.h>

#include "../core/ns.h"
#include "../core/process.h"
#include "../core/span.h"
#include "../core/table.h"
#include "../core/vm.h"

/* Upstream's mmap flags (daxvm_header.h). MAP_DAXVM_EPHEMERAL is a MAP_HUGE_* size bit when MAP_HUGETLB is set. */
#define MAP_DAXVM 0x400000
#define MAP_DAXVM_BATCHING 0x200000
#define MAP_DAXVM_EPHEMERAL 0x4000000
#define DVMP_BITS (MAP_DAXVM | MAP_DAXVM_BATCHING | MAP_DAXVM_EPHEMERAL)

/* A mount seen by its id: a daxvm one (pool path, views) or not. Entries live as long as the process. */
typedef struct {
  uint64_t mnt_id;
  int unique;
  int daxvm;
  char mountpoint[1024];
  char pool[1024];
  dvm_pool *p;                 /* set with the first view */
  void *view[DVM_VIEWS];       /* atomic: NULL until mapped */
  int view_err[DVM_VIEWS];     /* why it could not be (negative errno), remembered */
  dvm_span view_span[DVM_VIEWS]; /* spans over the views (kind POOL), for dirty tracking */
  uint64_t ns_bound; /* atomic: (region_gen << 32) | (index + 1) of its namespace region, found by a walk; 0 not yet */
} dvmp_mount;

/* The mount of a file by its statx; *out = NULL when it is not a daxvm mount. 0 or a negative errno. */
int dvmp_mount_of(const dvm_quick_stat *q, dvmp_mount **out);

/* A view of the mount's pool (mapped once, MADV_DONTFORK); 0 or a negative errno (remembered). */
int dvmp_mount_view(dvmp_mount *m, enum dvm_view kind, void **addr_out);

/* Does [addr, +len) touch memory the preload holds for itself (pool views, the ephemeral heap)? */
int dvmp_touches_reserved(uintptr_t addr, uint64_t len);

/* tables.c: a file's runs, leased. */
#define DVMP_STACK_RUNS 64
typedef struct {
  dvm_run *runs; /* stack, or heap when there are more */
  unsigned n;
  dvm_lease lease;
  dvm_run stack[DVMP_STACK_RUNS];
  void *heap; /* from the kernel (not malloc): dvm_real_munmap(heap, heap_len) when done */
  uint64_t heap_len;
  int vouched; /* the lease met blocks an unconfirmed commit vouches for (EAGAIN): fsync the file, then try again */
} dvmp_leased;
/* The fd's user.daxvm.ppt (one request to the daemon): ino gen seq root level nodes size. */
int dvmp_read_ppt(int fd, unsigned long long v[7]);
/* The runs of file blocks [first, end) of inode ino, leased and checked; NULL, or why not. */
const char *dvmp_lease_table(dvmp_mount *m, const void *ro, const dvm_pool_info *info, uint32_t ino, uint32_t gen,
                             uint64_t first, uint64_t end, int writable, dvmp_leased *out);

/*
 * The fd's file in the shared namespace. Once a walk has found the mount's
 * region: by the fd's inode number (statx) alone, no system call. Else (and
 * whenever that fails): its path as the kernel keeps it (/proc/self/fd)
 * resolved in the daemon's published names, taken only if it is the same
 * inode of the same pool (not a file renamed or unlinked since the open, nor
 * a name another file took); that walk binds the mount to its region. 1: found.
 */
int dvmp_ns_of_fd(int fd, const dvm_quick_stat *q, int writable, dvmp_mount *m, dvm_ns_file *f);
/* dvmp_lease_table's twin over the namespace's copy of the table; *retry set: use the pool's table instead. */
const char *dvmp_lease_ns(dvmp_mount *m, dvm_ns_file *f, uint64_t first, uint64_t end, int writable, dvmp_leased *out,
                          int *retry);

/* mapping.c: the DaxVM path. DVMP_KERNEL (with *why) when the kernel's mmap must serve the call. */
#define DVMP_KERNEL ((void *)-2)
void *dvmp_map(void *addr, size_t len, int prot, int flags, int fd, off_t off, const char **why);
/* 1: [addr, +len) was ours and is handled (*rc set: 0 or -errno); 0: not ours at all. */
int dvmp_unmap(void *addr, size_t len, int *rc);
int dvmp_sync(void *addr, size_t len, int flags, int *rc);
/* Does [addr, +len) touch a mapping of ours (live, or a zombie not yet dropped)? */
int dvmp_touches_mapping(uintptr_t addr, uint64_t len);
/* Any mapping of ours live or queued (a fast path for the interceptors). */
int dvmp_any(void);

/* Around fork (pthread_atfork): hold the locks across it; in the child, forget what the parent had. */
void dvmp_mounts_before_fork(void);
void dvmp_mounts_after_fork(int child);
void dvmp_mappings_after_fork_child(void);

/* interpose.c: DAXVM_MMAP=all; DAXVM_ATTACH=0 (always stitch). */
extern int dvmp_all, dvmp_no_attach;

#endif
