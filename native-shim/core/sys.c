/* File system calls of the daxvm C core (see sys.h). */
#define _GNU_SOURCE
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t page_size(void)
{
  static uint64_t ps;
  if (ps == 0) ps = (uint64_t)sysconf(_SC_PAGESIZE);
  return ps;
}

int dvm_map_file(int fd, uint64_t length, int writable, int populate,
                 void **addr_out)
{
  if (length == 0 || length > (uint64_t)SIZE_MAX) return -EINVAL;
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void *addr = mmap(NULL, (size_t)length, prot,
                    MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
  if (addr == MAP_FAILED) return -errno;
  *addr_out = addr;
  return 0;
}

int dvm_unmap(void *addr, uint64_t length)
{
  return munmap(addr, (size_t)length) == 0 ? 0 : -errno;
}

/*
 * Turns a byte range of a mapping into the page range covering it; an empty
 * range (*len == 0) means there is nothing to do.
 */
static void page_range(uint64_t map_len, uint64_t offset, uint64_t length,
                       uint64_t *start, uint64_t *len)
{
  uint64_t ps = page_size();
  uint64_t s = offset & ~(ps - 1);
  uint64_t e = (offset + length + ps - 1) & ~(ps - 1);
  if (e > map_len) e = map_len; /* the last page of a file may be partial */
  *start = s;
  *len = (length == 0 || e <= s) ? 0 : e - s;
}

int dvm_msync_range(void *base, uint64_t map_len, uint64_t offset,
                    uint64_t length)
{
  uint64_t s, n;
  page_range(map_len, offset, length, &s, &n);
  if (n == 0) return 0;
  return msync((char *)base + s, (size_t)n, MS_SYNC) == 0 ? 0 : -errno;
}

int dvm_madvise_range(void *base, uint64_t map_len, uint64_t offset,
                      uint64_t length, enum dvm_advice advice)
{
  int adv;
  switch (advice) {
  case DVM_ADV_WILLNEED: adv = MADV_WILLNEED; break;
  case DVM_ADV_DONTNEED: adv = MADV_DONTNEED; break;
  case DVM_ADV_HUGEPAGE: adv = MADV_HUGEPAGE; break;
  case DVM_ADV_SEQUENTIAL: adv = MADV_SEQUENTIAL; break;
  case DVM_ADV_RANDOM: adv = MADV_RANDOM; break;
  default: return -EINVAL;
  }
  uint64_t s, n;
  page_range(map_len, offset, length, &s, &n);
  if (n == 0) return 0;
  return madvise((char *)base + s, (size_t)n, adv) == 0 ? 0 : -errno;
}

int dvm_flock(int fd, enum dvm_lock op)
{
  int how;
  switch (op) {
  case DVM_LOCK_EXCLUSIVE: how = LOCK_EX | LOCK_NB; break;
  case DVM_LOCK_SHARED: how = LOCK_SH | LOCK_NB; break;
  case DVM_LOCK_UNLOCK: how = LOCK_UN; break;
  default: return -EINVAL;
  }
  int rc;
  do rc = flock(fd, how);
  while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : -errno;
}

int dvm_punch_hole(int fd, uint64_t offset, uint64_t length)
{
  int rc;
  do rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset, (off_t)length);
  while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : -errno;
}

int dvm_fallocate(int fd, int mode, int64_t offset, int64_t length)
{
  int rc;
  do rc = fallocate(fd, mode, (off_t)offset, (off_t)length);
  while (rc != 0 && errno == EINTR);
  return rc == 0 ? 0 : -errno;
}

const char *dvm_errno_name(int err, char *scratch, unsigned scratch_len)
{
  const char *name = strerrorname_np(err); /* glibc >= 2.32 */
  if (name) return name;
  snprintf(scratch, scratch_len, "E%d", err);
  return scratch;
}
