/* Spans of the client library (see span.h). */
#define _GNU_SOURCE
#include "span.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vm.h"

int dvm_span_stitch(dvm_pool *p, const dvm_run *runs, unsigned count, int writable,
                    int priv, int ephemeral, int track, dvm_lease *lease, dvm_span **out,
                    const char **sys)
{
  dvm_span *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  int rc = dvm_span_stitch_in(s, p, runs, count, writable, priv, ephemeral, track, lease, sys);
  if (rc < 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int dvm_span_stitch_in(dvm_span *s, dvm_pool *p, const dvm_run *runs, unsigned count,
                       int writable, int priv, int ephemeral, int track, dvm_lease *lease,
                       const char **sys)
{
  int embedded = s->embedded;
  memset(s, 0, sizeof *s);
  s->embedded = embedded;
  *sys = "mmap";
  uint64_t total = 0;
  for (unsigned i = 0; i < count; i++) {
    if (runs[i].offset % 4096 || runs[i].length % 4096 || runs[i].length == 0 ||
        runs[i].offset + runs[i].length > p->size)
      return -EINVAL;
    total += runs[i].length;
  }
  if (count == 0) return -EINVAL;
  int fd;
  int rc = 0, heap = 0, uffd = -1;
  void *addr = NULL;
  dvm_lock();
  if (writable && !priv) fd = p->fd_rw; /* the caller asked for a read-write view first */
  else fd = p->fd_ro >= 0 ? p->fd_ro : p->fd_rw;
  if (fd < 0) rc = -EBADF;
  if (rc == 0 && ephemeral) {
    rc = dvm_heap_alloc(total, &addr, &s->reserved);
    heap = rc == 0;
    if (rc == -ENOMEM) rc = 0; /* heap full: an ordinary reservation */
  }
  int tracked = track && !priv && writable && dvm_tracking_available();
  if (rc == 0 && tracked) rc = dvm_process_uffd(&uffd);
  dvm_unlock();
  if (rc == 0 && !heap) {
    s->reserved = total;
    rc = dvm_reserve(total, total >= DVM_SLOT ? DVM_SLOT : 4096, &addr);
  }
  if (rc == 0) {
    uint64_t at = 0;
    for (unsigned i = 0; i < count && rc == 0; i++) {
      rc = dvm_map_fixed((char *)addr + at, runs[i].length, fd, runs[i].offset, writable, priv);
      at += runs[i].length;
    }
    if (rc == 0 && tracked) {
      *sys = "ioctl(UFFDIO_REGISTER)";
      rc = dvm_uffd_register_wp(uffd, addr, total);
      if (rc == 0) {
        *sys = "ioctl(UFFDIO_WRITEPROTECT)";
        rc = dvm_uffd_writeprotect(uffd, addr, total, 1);
      }
    }
  }
  if (rc < 0) {
    if (addr) {
      if (heap) {
        dvm_unreserve(addr, s->reserved);
        dvm_lock();
        dvm_heap_free(addr, s->reserved);
        dvm_unlock();
      } else {
        munmap(addr, s->reserved);
      }
    }
    return rc;
  }
  s->addr = addr;
  s->length = total;
  s->refs = 1;
  s->kind = heap ? DVM_SPAN_HEAP : DVM_SPAN_OWN;
  s->tracked = tracked;
  s->pool = p;
  if (lease) {
    s->lease = *lease;
    lease->table = NULL;
    lease->n = 0;
  }
  return 0;
}

dvm_span *dvm_span_wrap(void *addr, uint64_t length, enum dvm_span_kind kind)
{
  dvm_span *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->addr = addr;
  s->length = s->reserved = length;
  s->refs = 1;
  s->kind = kind;
  return s;
}

void dvm_span_pool_view(dvm_span *s, dvm_pool *pool, enum dvm_view kind, void *addr)
{
  s->kind = DVM_SPAN_POOL;
  s->length = s->reserved = pool->size;
  s->tracked = kind == DVM_VIEW_RW && pool->tracked;
  s->pool = pool;
  s->refs = 1;
  s->addr = addr;
}

int dvm_span_give_back(dvm_span *s)
{
  int rc = 0;
  if (!s->addr || s->kind == DVM_SPAN_POOL) return 0;
  if (s->kind == DVM_SPAN_HEAP) {
    rc = dvm_unreserve(s->addr, s->reserved);
    if (rc == 0) {
      dvm_lock();
      dvm_heap_free(s->addr, s->reserved);
      dvm_unlock();
    }
  } else {
    rc = munmap(s->addr, s->reserved) == 0 ? 0 : -errno;
  }
  if (rc < 0) return rc;
  s->addr = NULL;
  /* The memory is gone: nothing can reach the blocks any more. */
  dvm_lease_drop(&s->lease);
  return 0;
}

void dvm_span_ref(dvm_span *s) { __atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL); }

void dvm_span_release(dvm_span *s)
{
  if (s->kind == DVM_SPAN_POOL) return; /* process-wide, never freed */
  if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  dvm_span_give_back(s);
  if (!s->embedded) free(s);
  else __atomic_store_n(&s->embedded, DVM_SPAN_STORAGE_FREE, __ATOMIC_RELEASE); /* the face may reuse it now */
}

int dvm_span_written(dvm_span *s, uint64_t off, uint64_t len, int rearm, int sync,
                     uint64_t *pages, const char **sys)
{
  int pm;
  *pages = 0;
  if (len == 0) return 0;
  *sys = "open(/proc/self/pagemap)";
  dvm_lock();
  int rc = dvm_process_pagemap(&pm);
  dvm_unlock();
  if (rc < 0) return rc;
  const uint64_t ps = 4096;
  uint64_t st = off & ~(ps - 1), e = (off + len + ps - 1) & ~(ps - 1);
  if (e > s->length) e = (s->length + ps - 1) & ~(ps - 1);
  dvm_region regions[256];
  uint64_t at = (uint64_t)(uintptr_t)s->addr + st, end = (uint64_t)(uintptr_t)s->addr + e;
  while (at < end) {
    uint64_t walk_end = end;
    *sys = "ioctl(PAGEMAP_SCAN)";
    int n = dvm_pagemap_scan(pm, (void *)(uintptr_t)at, end - at, rearm, regions, 256, &walk_end);
    if (n < 0) return n;
    for (int i = 0; i < n; i++) {
      *pages += (regions[i].end - regions[i].start) / ps;
      if (sync) {
        *sys = "msync";
        if (msync((void *)(uintptr_t)regions[i].start, regions[i].end - regions[i].start, MS_SYNC) != 0)
          return -errno;
      }
    }
    if (n < 256 || walk_end <= at) break;
    at = walk_end;
  }
  return 0;
}

/* ---- batched unmapping ------------------------------------------------------ */

static dvm_span *zombies;
static uint64_t zombie_pages, zombie_count;

/* Sorts a zombie list by address (merge sort on the list: no allocation). */
static dvm_span *sort_by_addr(dvm_span *list)
{
  if (!list || !list->zombie_next) return list;
  dvm_span *slow = list, *fast = list->zombie_next;
  while (fast && fast->zombie_next) {
    slow = slow->zombie_next;
    fast = fast->zombie_next->zombie_next;
  }
  dvm_span *b = slow->zombie_next;
  slow->zombie_next = NULL;
  dvm_span *a = sort_by_addr(list);
  b = sort_by_addr(b);
  dvm_span head = {0}, *tail = &head;
  while (a && b) {
    dvm_span **min = a->addr <= b->addr ? &a : &b;
    tail->zombie_next = *min;
    tail = *min;
    *min = (*min)->zombie_next;
  }
  tail->zombie_next = a ? a : b;
  return head.zombie_next;
}

uint64_t dvm_zombie_flush(void)
{
  dvm_lock();
  dvm_span *list = zombies;
  uint64_t n = zombie_count;
  zombies = NULL;
  zombie_pages = zombie_count = 0;
  dvm_unlock();
  list = sort_by_addr(list);
  for (dvm_span *first = list; first;) {
    /* A group: spans of one kind, each starting where the previous one's reservation ends. */
    dvm_span *last = first;
    unsigned char *end = first->addr + first->reserved;
    while (last->zombie_next && last->zombie_next->kind == first->kind && last->zombie_next->addr == end) {
      last = last->zombie_next;
      end += last->reserved;
    }
    dvm_span *after = last->zombie_next;
    uint64_t len = (uint64_t)(end - first->addr);
    int rc = first->kind == DVM_SPAN_HEAP ? dvm_unreserve(first->addr, len)
                                          : (munmap(first->addr, len) == 0 ? 0 : -errno);
    if (rc == 0 && first->kind == DVM_SPAN_HEAP) {
      dvm_lock();
      for (dvm_span *z = first; z != after; z = z->zombie_next) dvm_heap_free(z->addr, z->reserved);
      dvm_unlock();
    }
    for (dvm_span *z = first, *next; z != after; z = next) {
      next = z->zombie_next;
      if (rc == 0) {
        z->addr = NULL;
        dvm_lease_drop(&z->lease);
      } else {
        dvm_span_give_back(z); /* one at a time, then */
      }
      z->zombie_next = NULL;
      dvm_span_release(z); /* the zombie list's reference */
    }
    first = after;
  }
  return n;
}

uint64_t dvm_zombie_add(dvm_span *s, uint64_t max_pages)
{
  dvm_span_ref(s); /* the zombie list's */
  int full;
  dvm_lock();
  s->zombie = 1;
  s->zombie_next = zombies;
  zombies = s;
  zombie_count++;
  zombie_pages += s->length / 4096;
  full = zombie_pages >= max_pages;
  dvm_unlock();
  return full ? dvm_zombie_flush() : 0;
}

void dvm_zombie_stats(uint64_t *count, uint64_t *pages)
{
  dvm_lock();
  *count = zombie_count;
  *pages = zombie_pages;
  dvm_unlock();
}

void dvm_zombie_forget(void)
{
  zombies = NULL;
  zombie_pages = zombie_count = 0;
}
