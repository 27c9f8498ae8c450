/*
 * The daxvm C core (native-shim/core): no Node-API anywhere in it, so that
 * both faces use it, the Node addon (native-shim/node: parse, call, throw)
 * and a preload library for C programs. Every function returns 0 (or a
 * count) on success or a negative errno, so a face can turn any failure
 * into its own error (a JS Error carrying code, syscall and errno; errno).
 *
 * This file: thin wrappers over the file system calls Node cannot make.
 * vm.h: reservations, fixed maps, userfaultfd, PAGEMAP_SCAN; process.h: the
 * process-wide state (pool views, the ephemeral heap); span.h: the memory of
 * one mapping and its life. Naming: dvm_<verb>_<object>. Includes run one
 * way: span -> process -> vm; sys stands alone.
 */
#ifndef DAXVM_SYS_H
#define DAXVM_SYS_H

#include <stdint.h>

/* madvise hints the shim exposes (mapped to MADV_* in sys.c). */
enum dvm_advice {
  DVM_ADV_WILLNEED,
  DVM_ADV_DONTNEED,
  DVM_ADV_HUGEPAGE,
  DVM_ADV_SEQUENTIAL,
  DVM_ADV_RANDOM,
};

/* flock operations; all are non-blocking. */
enum dvm_lock { DVM_LOCK_EXCLUSIVE, DVM_LOCK_SHARED, DVM_LOCK_UNLOCK };

/* mmap(MAP_SHARED) of [0, length) of fd, read-only or read-write; MAP_POPULATE when populate. */
int dvm_map_file(int fd, uint64_t length, int writable, int populate,
                 void **addr_out);

/* munmap of a mapping made by dvm_map_file. */
int dvm_unmap(void *addr, uint64_t length);

/*
 * msync(MS_SYNC) / madvise over the pages covering [offset, offset+length)
 * of the mapping at base (map_len bytes): the start is rounded down to a
 * page, the end up to a page and then clamped to the mapping.
 */
int dvm_msync_range(void *base, uint64_t map_len, uint64_t offset,
                    uint64_t length);
int dvm_madvise_range(void *base, uint64_t map_len, uint64_t offset,
                      uint64_t length, enum dvm_advice advice);

/* flock(LOCK_NB); a held lock fails with -EWOULDBLOCK. */
int dvm_flock(int fd, enum dvm_lock op);

/*
 * fallocate(PUNCH_HOLE | KEEP_SIZE) over [offset, offset+length) of fd: the
 * range reads as zeros at once (also through every MAP_SHARED mapping) and
 * gives its disk space back to the host.
 */
int dvm_punch_hole(int fd, uint64_t offset, uint64_t length);

/*
 * fallocate(2) as called: mode is FALLOC_FL_* bits, offset and length are
 * passed on unchecked (the kernel and the file system answer bad ones).
 */
int dvm_fallocate(int fd, int mode, int64_t offset, int64_t length);

/* "EACCES" for EACCES; "E<n>" when the C library has no name for it. */
const char *dvm_errno_name(int err, char *scratch, unsigned scratch_len);

#endif
