/*
 * The lease table, client side: a mapping of the pool holds a lease on the
 * pool blocks it reaches, so that the daemon never hands them to anyone
 * else while the mapping lives (docs/format.md, "The lease table"). A lease
 * is one or more slots of a table in shared memory, each naming a range of
 * pool blocks and its holder (pid and start time, so a dead holder's slots
 * can be reaped and a reused pid is told apart).
 *
 * Taking and dropping a lease are lock-free and make no system call: a
 * process claims slots for itself once (compare-and-swap on the owner word)
 * and then reuses them with one compare-and-swap on the range word; a drop
 * is one store. Safe from any thread and from a signal handler (drop).
 *
 * The ordering contract (the daemon's half is in src/fuse/publish): take the
 * lease, then (the compare-and-swap is a full fence) read again what said
 * where the blocks are, and use them only if it did not change.
 */
#ifndef DAXVM_LEASE_H
#define DAXVM_LEASE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../include/daxvm_format.h"

/* Most slots one lease takes: runs beyond this are merged into covering ranges. */
#define DVM_LEASE_SLOTS 16

typedef struct dvm_lease_table dvm_lease_table;

typedef struct {
  dvm_lease_table *table; /* NULL: holds nothing */
  uint32_t n;
  uint32_t slot[DVM_LEASE_SLOTS];
} dvm_lease;

/* A pool run as the table sees it: blocks [start, start + count). */
typedef struct {
  uint64_t start, count;
} dvm_block_run;

/*
 * The lease table of the pool open as pool_fd (read for its identity: device,
 * inode, owner, mode, UUID), mapped read-write for the life of the process.
 * -ENOENT: no daemon made one; -EACCES: no write access; -EPERM: the file
 * is not the pool owner's or is more open than the pool; -EPROTO: not a
 * table of this pool or of this version; -EXDEV: its holders' pids are in
 * another pid namespace. Callers serialize opens (process.c's lock).
 */
int dvm_lease_table_open(int pool_fd, dvm_lease_table **out);

/*
 * Whether a daemon let this table go at an unmount (the header's `retired`).
 * A process keeps its table for life; a retired one is opened again at the
 * path (dvm_lease_table_open), which gives the table a later daemon made or
 * adopted. dvm_lease_take refuses a retired table (-ESTALE).
 */
bool dvm_lease_table_retired(const dvm_lease_table *t);

/*
 * Take a lease on the runs (in any order, merged into at most
 * DVM_LEASE_SLOTS ranges when there are more). ino and gen say which file
 * it protects (for tools); writable: the mapping may store into them.
 * -ENOSPC when the table has no free slot; -ESTALE in a retired table;
 * -EAGAIN (writable only) when a run meets blocks the daemon's newest
 * durable commit vouches for by checksum: an fsync of the file through the
 * mount confirms that commit, then take it again (docs/format.md, "The
 * lease table").
 */
int dvm_lease_take(dvm_lease_table *t, const dvm_block_run *runs, unsigned count, uint32_t ino,
                   uint32_t gen, bool writable, dvm_lease *out);

/* Let the lease go (idempotent). One store per slot: lock-free, async-signal-safe. */
void dvm_lease_drop(dvm_lease *l);

/* This process's owner word (pid << 32 | start time's low 32 bits), as the table holds it. */
uint64_t dvm_lease_owner(void);

/* The directory the shared files live in: $DAXVM_SHM_DIR, else /dev/shm. */
const char *dvm_shm_dir(void);

#endif
