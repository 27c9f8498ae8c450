/*
 * The preload library's own view of the kernel: the calls it intercepts
 * (mmap, munmap, msync, mprotect, mremap) made as raw system calls, so that
 * neither the preload nor the C core it is built with (compiled with
 * mmap=dvm_real_mmap and so on, see binding.gyp) ever calls back into its
 * own interceptors. All async-signal-safe: no allocation, no lock.
 */
#ifndef DAXVM_PRELOAD_REAL_H
#define DAXVM_PRELOAD_REAL_H

#include <stddef.h>
#include <sys/types.h>

void *dvm_real_mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
int dvm_real_munmap(void *addr, size_t length);
int dvm_real_msync(void *addr, size_t length, int flags);
int dvm_real_mprotect(void *addr, size_t length, int prot);
void *dvm_real_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr);

/* DAXVM_DEBUG: a line on stderr, printf-style, written with one write(2); no allocation. */
extern int dvmp_debug;
void dvmp_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define DVMP_SAY(...) do { if (dvmp_debug) dvmp_say(__VA_ARGS__); } while (0)

#endif
