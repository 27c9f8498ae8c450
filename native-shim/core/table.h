/*
 * A file's persistent page table read straight from the pool (docs/format.md,
 * "Readers in other processes"), the C twin of src/lib/pool.ts readTable: the
 * inode's sequence word is read before and after (odd: the daemon is
 * writing; changed: read again), and every block number is checked against
 * the data area, so a torn or hostile pool yields a problem, never a wild
 * address. No Node-API, no allocation, no system call: only loads from a
 * read-only view of the pool that the caller mapped (process.h).
 */
#ifndef DAXVM_TABLE_H
#define DAXVM_TABLE_H

#include <stdint.h>

#include "span.h"

/* What a face needs of the superblock: geometry and the knobs it obeys. */
typedef struct {
  uint64_t total_blocks, data_start, inode_table_start;
  uint32_t inode_count;
  uint32_t knob_msync, knob_zombie_max_pages;
} dvm_pool_info;

/* The superblock of the pool mapped at view (size bytes): -EPROTO when it is not a daxvm pool. */
int dvm_pool_info_read(const void *view, uint64_t size, dvm_pool_info *out);

/* Leaves of a table read: 4 KiB PTE entries, 2 MiB and 1 GiB huge entries. */
typedef struct {
  uint64_t pte, pmd, pud;
} dvm_leaves;

typedef struct {
  unsigned runs;      /* runs found (may exceed the room given: nothing past the room was stored) */
  uint64_t holes;     /* blocks of the range that no entry maps */
  uint64_t size;      /* the inode's size in bytes */
  uint32_t seq;       /* the inode's (even) sequence word when read */
  dvm_leaves leaves;
} dvm_table_result;

/* Why a read failed (a constant string), for the faces' messages. */
typedef enum {
  DVM_TABLE_OK = 0,
  DVM_TABLE_NOT_REGULAR,   /* the slot holds no regular file now */
  DVM_TABLE_REUSED,        /* generation changed */
  DVM_TABLE_NO_TABLE,      /* root 0 or level out of range */
  DVM_TABLE_BAD_BLOCK,     /* an entry points outside the data area */
  DVM_TABLE_BAD_INODE,     /* ino outside the inode table */
  DVM_TABLE_BUSY,          /* the sequence word never held still */
} dvm_table_problem;

const char *dvm_table_problem_text(dvm_table_problem p);

/*
 * The runs (pool byte offset, byte length; merged where the pool is
 * contiguous, in file order) mapping logical blocks [first, end) of inode
 * ino of generation gen. Up to room runs are stored in out; out->runs says
 * how many there are. Returns DVM_TABLE_OK or the problem.
 */
dvm_table_problem dvm_table_read(const void *view, const dvm_pool_info *info, uint32_t ino,
                                 uint32_t gen, uint64_t first, uint64_t end, dvm_run *out,
                                 unsigned room, dvm_table_result *res);

/* Is inode ino's sequence word still seq (its table unchanged since it was read)? */
int dvm_table_unchanged(const void *view, const dvm_pool_info *info, uint32_t ino, uint32_t seq);

#endif
