/* Raw system calls and the debug line of the preload library (see real.h). */
#define _GNU_SOURCE
#include "real.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int dvmp_debug;

void *dvm_real_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
  return (void *)syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
}

int dvm_real_munmap(void *addr, size_t length) { return (int)syscall(SYS_munmap, addr, length); }

int dvm_real_msync(void *addr, size_t length, int flags) { return (int)syscall(SYS_msync, addr, length, flags); }

int dvm_real_mprotect(void *addr, size_t length, int prot)
{
  return (int)syscall(SYS_mprotect, addr, length, prot);
}

void *dvm_real_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
  return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

void dvmp_say(const char *fmt, ...)
{
  int saved = errno;
  char line[512];
  int n = snprintf(line, sizeof line, "daxvm-preload[%d]: ", (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  n += m < 0 ? 0 : (m >= (int)(sizeof line - (size_t)n - 1) ? (int)(sizeof line - (size_t)n - 2) : m);
  line[n++] = '\n';
  ssize_t w = write(2, line, (size_t)n);
  (void)w;
  errno = saved;
}

/*
 * mmap64, for programs linked to that name (glibc's headers redirect it to
 * mmap on 64-bit, so it is defined here, where <sys/mman.h> is not included).
 */
void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
__attribute__((visibility("default"))) void *mmap64(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
{
  return mmap(addr, length, prot, flags, fd, offset);
}
