/*
 * Process-wide state of the client library, shared by every worker thread
 * (each worker has its own JS heap and its own Node-API env, but the addon
 * is loaded once per process): the pool views, the userfaultfd, the pagemap
 * fd, the ephemeral heap. One mutex guards it all; nothing here is on a hot
 * path except under it briefly. No Node-API here.
 */
#ifndef DAXVM_PROCESS_H
#define DAXVM_PROCESS_H

#include <stdint.h>
#include <sys/types.h>

#include "lease.h"
#include "vm.h"

/* The views of a pool the process maps once: read-only, read-write tracked (uffd-wp), read-write untracked. */
enum dvm_view { DVM_VIEW_RO, DVM_VIEW_RW, DVM_VIEW_RW_UNTRACKED, DVM_VIEWS };

typedef struct dvm_pool {
  dev_t dev;
  ino_t ino;
  uint64_t size;
  int fd_ro, fd_rw;        /* -1 until needed */
  void *view[DVM_VIEWS];   /* NULL until needed */
  int tracked;             /* the RW view is registered and armed */
  dvm_lease_table *leases; /* NULL until opened (dvm_pool_leases) */
  int leases_err;          /* why it could not be opened (negative errno), 0 */
} dvm_pool;

void dvm_lock(void);
void dvm_unlock(void);

/*
 * In a forked child (from a pthread_atfork child handler, with the lock
 * held across the fork by the face): forget the pool views (a face that
 * made them MADV_DONTFORK has none left; they are mapped again on first
 * use) and close the parent's userfaultfd and pagemap fd, which reach the
 * parent's memory, not ours. The pool files stay open.
 */
void dvm_process_after_fork(void);

/* The kernel's features, probed once. */
const dvm_features *dvm_features_get(void);

/* Whether the library tracks dirty pages (uffd WP async and PAGEMAP_SCAN), unless DAXVM_NO_TRACKING is set. */
int dvm_tracking_available(void);

/*
 * The process's view of the pool file at path (mapped on first use, kept for
 * the life of the process, 2 MiB-aligned). Call with the lock held.
 */
int dvm_pool_view(const char *path, enum dvm_view kind, dvm_pool **pool_out,
                  void **addr_out);

/*
 * The lease table of a pool (opened on first use through the pool's fd; a
 * failure other than ENOENT is remembered and answered again). Takes the
 * lock itself, only until the table is open: call it WITHOUT the lock.
 */
int dvm_pool_leases(dvm_pool *p, dvm_lease_table **out);

/* The process's userfaultfd (WP async) and /proc/self/pagemap fd; lock held. */
int dvm_process_uffd(int *fd_out);
int dvm_process_pagemap(int *fd_out);

/* Ephemeral heap: 2 MiB slots of one reservation; lock held. -ENOMEM when full. */
#define DVM_SLOT (2ull << 20)
int dvm_heap_alloc(uint64_t length, void **addr_out, uint64_t *reserved_out);
void dvm_heap_free(void *addr, uint64_t reserved);
void dvm_heap_stats(uint64_t *size, uint64_t *used, uint64_t *top);
/* Where the heap's reservation is (NULL, 0 before its first use); no lock needed. */
void dvm_heap_range(void **base, uint64_t *size);

#endif
