/*
 * The memory-management half of the native shim's C core, for the client
 * library (src/lib): address reservations, fixed maps of pool runs,
 * userfaultfd write-protect in asynchronous mode, the PAGEMAP_SCAN ioctl and
 * getxattr. Like sys.c: no Node-API here, every function returns 0 (or a
 * count) on success and a negative errno on failure.
 */
#ifndef DAXVM_VM_H
#define DAXVM_VM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Constants newer than Debian bookworm's kernel headers (6.1), with the
 * kernel version that brought each. Defined only when the headers lack them.
 */
#include <linux/userfaultfd.h>
#include <linux/fs.h>
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1 /* 5.11 */
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* 6.4 */
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) /* 6.7 */
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00) /* /dev/userfaultfd, 6.1 */
#endif
#ifndef PAGEMAP_SCAN /* 6.7: struct page_region, struct pm_scan_arg, the ioctl */
struct page_region {
  uint64_t start, end, categories;
};
struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages,
      category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#endif

/* What this kernel offers the library (probed once; see dvm_probe). */
typedef struct {
  int uffd_errno;        /* 0, or why no userfaultfd could be made */
  uint64_t uffd_features; /* the kernel's UFFDIO_API feature set */
  int wp_async;          /* UFFD_FEATURE_WP_ASYNC */
  int wp_unpopulated;    /* UFFD_FEATURE_WP_UNPOPULATED */
  int scan_errno;        /* 0 when PAGEMAP_SCAN works, else its errno */
} dvm_features;

void dvm_probe(dvm_features *out);

/* A PROT_NONE reservation of length bytes whose start is a multiple of align. */
int dvm_reserve(uint64_t length, uint64_t align, void **addr_out);

/* Give [addr, +length) back to a reservation: PROT_NONE, no pages, same addresses. */
int dvm_unreserve(void *addr, uint64_t length);

/* mmap(MAP_FIXED) of [offset, +length) of fd at addr: MAP_SHARED, or MAP_PRIVATE (copy-on-write). */
int dvm_map_fixed(void *addr, uint64_t length, int fd, uint64_t offset,
                  int writable, int private_);

/*
 * A userfaultfd for write-protect in asynchronous mode (the kernel resolves
 * the faults itself, nobody reads the fd): the syscall with
 * UFFD_USER_MODE_ONLY, then without, then /dev/userfaultfd.
 */
int dvm_uffd_open(uint64_t features, int *fd_out);
int dvm_uffd_register_wp(int uffd, void *addr, uint64_t length);
/* Arm (on) or disarm write protection over the range. */
int dvm_uffd_writeprotect(int uffd, void *addr, uint64_t length, int on);

typedef struct {
  uint64_t start, end; /* virtual addresses */
} dvm_region;

/*
 * PAGEMAP_SCAN over [addr, +length): the runs of written pages (PAGE_IS_WRITTEN
 * of a uffd-wp async range), up to max regions; with rearm, the same call
 * write-protects them again (PM_SCAN_WP_MATCHING). Returns the number of
 * regions; *walk_end says where the walk stopped (less than the end when the
 * vector filled up).
 */
int dvm_pagemap_scan(int pagemap_fd, void *addr, uint64_t length, int rearm,
                     dvm_region *out, unsigned max, uint64_t *walk_end);

/*
 * The mount an open file lives on, its device and its type, by statx
 * without a round trip to the file system (AT_STATX_DONT_SYNC: what the
 * kernel has cached): the mount id is STATX_MNT_ID_UNIQUE (6.8, never
 * reused) where the kernel has it (unique = 1), else STATX_MNT_ID (5.8).
 */
typedef struct {
  uint64_t mnt_id;
  int unique;
  uint32_t dev_major, dev_minor;
  uint32_t mode;
  uint64_t ino;
} dvm_quick_stat;
int dvm_quick_stat_fd(int fd, dvm_quick_stat *out);

/* fgetxattr into buf, as dvm_getxattr (no lookup of the path by the file system). */
int dvm_fgetxattr(int fd, const char *name, void *buf, size_t size, size_t *len_out);

/* getxattr into buf; *len_out gets the value's length (ERANGE if buf is too small). */
int dvm_getxattr(const char *path, const char *name, void *buf, size_t size,
                 size_t *len_out);

#endif
