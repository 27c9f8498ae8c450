/* Memory-management core of the daxvm native shim (see vm.h). */
#define _GNU_SOURCE
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/stat.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

int dvm_reserve(uint64_t length, uint64_t align, void **addr_out)
{
  if (length == 0 || length > (uint64_t)SIZE_MAX / 2) return -EINVAL;
  if (align < 4096) align = 4096;
  uint64_t total = length + align - 4096;
  char *p = mmap(NULL, (size_t)total, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return -errno;
  uintptr_t start = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
  /* Trim the slack on both sides: the reservation is exactly [start, +length). */
  if (start > (uintptr_t)p) munmap(p, start - (uintptr_t)p);
  uintptr_t end = start + length, tend = (uintptr_t)p + total;
  if (tend > end) munmap((void *)end, tend - end);
  *addr_out = (void *)start;
  return 0;
}

int dvm_unreserve(void *addr, uint64_t length)
{
  void *p = mmap(addr, (size_t)length, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  return p == MAP_FAILED ? -errno : 0;
}

int dvm_map_fixed(void *addr, uint64_t length, int fd, uint64_t offset,
                  int writable, int private_)
{
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  int flags = MAP_FIXED | (private_ ? MAP_PRIVATE : MAP_SHARED);
  void *p = mmap(addr, (size_t)length, prot, flags, fd, (off_t)offset);
  return p == MAP_FAILED ? -errno : 0;
}

static int uffd_handshake(int fd, uint64_t features, uint64_t *got)
{
  struct uffdio_api api = {.api = UFFD_API, .features = features};
  if (ioctl(fd, UFFDIO_API, &api) != 0) return -errno;
  if (got) *got = api.features;
  return 0;
}

/* A fresh, not yet handshaken userfaultfd. */
static int uffd_new(int *fd_out)
{
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0 && errno == EINVAL) /* kernels before 5.11 */
    fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 && (errno == EPERM || errno == ENOSYS)) {
    int err = errno;
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) return -err;
    fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    int e2 = errno;
    close(dev);
    if (fd < 0) return -e2;
  }
  if (fd < 0) return -errno;
  *fd_out = fd;
  return 0;
}

int dvm_uffd_open(uint64_t features, int *fd_out)
{
  int fd = -1, rc = uffd_new(&fd);
  if (rc < 0) return rc;
  rc = uffd_handshake(fd, features, NULL);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  *fd_out = fd;
  return 0;
}

int dvm_uffd_register_wp(int uffd, void *addr, uint64_t length)
{
  struct uffdio_register reg = {
      .range = {.start = (uintptr_t)addr, .len = length},
      .mode = UFFDIO_REGISTER_MODE_WP};
  return ioctl(uffd, UFFDIO_REGISTER, &reg) == 0 ? 0 : -errno;
}

int dvm_uffd_writeprotect(int uffd, void *addr, uint64_t length, int on)
{
  struct uffdio_writeprotect wp = {
      .range = {.start = (uintptr_t)addr, .len = length},
      .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
  int rc;
  do rc = ioctl(uffd, UFFDIO_WRITEPROTECT, &wp);
  while (rc != 0 && errno == EAGAIN);
  return rc == 0 ? 0 : -errno;
}

int dvm_pagemap_scan(int pagemap_fd, void *addr, uint64_t length, int rearm,
                     dvm_region *out, unsigned max, uint64_t *walk_end)
{
  struct page_region vec[max ? max : 1];
  struct pm_scan_arg arg = {
      .size = sizeof arg,
      .flags = PM_SCAN_CHECK_WPASYNC | (rearm ? PM_SCAN_WP_MATCHING : 0),
      .start = (uintptr_t)addr,
      .end = (uintptr_t)addr + length,
      .vec = (uintptr_t)vec,
      .vec_len = max,
      .category_mask = PAGE_IS_WRITTEN,
      .return_mask = PAGE_IS_WRITTEN,
  };
  long n;
  do n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  for (long i = 0; i < n; i++) {
    out[i].start = vec[i].start;
    out[i].end = vec[i].end;
  }
  if (walk_end) *walk_end = arg.walk_end;
  return (int)n;
}

void dvm_probe(dvm_features *f)
{
  memset(f, 0, sizeof *f);
  int fd = -1, rc = uffd_new(&fd);
  if (rc < 0) {
    f->uffd_errno = -rc;
  } else {
    rc = uffd_handshake(fd, 0, &f->uffd_features); /* 0: tell me what you have */
    if (rc < 0) f->uffd_errno = -rc;
    close(fd);
  }
  f->wp_async = (f->uffd_features & UFFD_FEATURE_WP_ASYNC) != 0;
  f->wp_unpopulated = (f->uffd_features & UFFD_FEATURE_WP_UNPOPULATED) != 0;

  /* PAGEMAP_SCAN on one anonymous page, without the WP-async check. */
  int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (pm < 0) {
    f->scan_errno = errno;
    return;
  }
  void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    f->scan_errno = errno;
  } else {
    struct page_region vec[1];
    struct pm_scan_arg arg = {.size = sizeof arg, .start = (uintptr_t)page,
                              .end = (uintptr_t)page + 4096, .vec = (uintptr_t)vec,
                              .vec_len = 1, .category_mask = 0,
                              .return_mask = PAGE_IS_WRITTEN};
    f->scan_errno = ioctl(pm, PAGEMAP_SCAN, &arg) < 0 ? errno : 0;
    munmap(page, 4096);
  }
  close(pm);
}

int dvm_getxattr(const char *path, const char *name, void *buf, size_t size,
                 size_t *len_out)
{
  ssize_t n;
  do n = getxattr(path, name, buf, size);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  *len_out = (size_t)n;
  return 0;
}

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U /* 5.8 */
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U /* 6.8 */
#endif
#ifndef AT_STATX_DONT_SYNC
#define AT_STATX_DONT_SYNC 0x4000
#endif

int dvm_quick_stat_fd(int fd, dvm_quick_stat *out)
{
  struct statx stx;
  unsigned want = STATX_TYPE | STATX_MODE | STATX_INO;
  memset(&stx, 0, sizeof stx);
  long rc = syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
                    want | STATX_MNT_ID_UNIQUE, &stx);
  if (rc != 0) return -errno;
  if (stx.stx_mask & STATX_MNT_ID_UNIQUE) {
    out->unique = 1;
  } else {
    memset(&stx, 0, sizeof stx);
    rc = syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, want | STATX_MNT_ID, &stx);
    if (rc != 0) return -errno;
    if (!(stx.stx_mask & STATX_MNT_ID)) return -EOPNOTSUPP;
    out->unique = 0;
  }
  out->mnt_id = stx.stx_mnt_id;
  out->dev_major = stx.stx_dev_major;
  out->dev_minor = stx.stx_dev_minor;
  out->mode = stx.stx_mode;
  out->ino = stx.stx_ino;
  return 0;
}

int dvm_fgetxattr(int fd, const char *name, void *buf, size_t size, size_t *len_out)
{
  ssize_t n;
  do n = fgetxattr(fd, name, buf, size);
  while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  *len_out = (size_t)n;
  return 0;
}
