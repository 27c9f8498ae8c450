/*
 * Spans: the memory of one mapping the library made out of the pool, and its
 * life (stitch, written pages, give back, batched unmapping as zombies).
 * No Node-API here: the Node addon (native-shim/node) and a preload library
 * both drive spans through these functions. Every function returns 0 (or a
 * count) on success and a negative errno on failure; where a system call
 * failed, *sys (when given) names it for the error message.
 *
 * Threads: any function may run on any thread. Process-wide state (the
 * zombie list, the ephemeral heap) is touched under dvm_lock(); a span's
 * reference count is atomic. Nothing here allocates while the lock is held
 * except the span itself (dvm_span_stitch).
 */
#ifndef DAXVM_SPAN_H
#define DAXVM_SPAN_H

#include <stdint.h>

#include "lease.h"
#include "process.h"

/* What a span's memory is, and so how it is given back. */
enum dvm_span_kind {
  DVM_SPAN_FILE, /* mmap of a whole file (the vanilla path), munmap */
  DVM_SPAN_OWN,  /* a reservation of our own with pool runs mapped in, munmap */
  DVM_SPAN_HEAP, /* slots of the ephemeral heap, given back to it */
  DVM_SPAN_POOL, /* the process's view of a pool, never given back */
};

typedef struct dvm_span {
  unsigned char *addr;  /* NULL once given back */
  uint64_t length;
  uint64_t reserved;    /* address space held: >= length (heap slots, alignment) */
  unsigned refs;        /* atomic: the face's handle and whatever else it counts */
  enum dvm_span_kind kind;
  int tracked;          /* registered with the process's userfaultfd, armed */
  int zombie;           /* queued for a batched unmap */
  int embedded;         /* 0: malloc'ed by the core; else the face owns the storage (see dvm_span_stitch_in) */
  dvm_lease lease;      /* the pool blocks it maps; dropped once the memory is given back */
  struct dvm_pool *pool;
  void *face;           /* the face's own bookkeeping (the addon's view list) */
  struct dvm_span *zombie_next;
} dvm_span;

/* A pool run: `length` bytes at pool byte `offset` (both multiples of 4096). */
typedef struct {
  uint64_t offset, length;
} dvm_run;

/*
 * One span over the runs, in order: an address range of our own (or
 * ephemeral-heap slots when ephemeral and there is room) with each run
 * mapped at its place by MAP_FIXED from the pool file (its read-write fd
 * when writable and shared), then, when track, registered for write-protect
 * tracking and armed. On success the span holds *lease (which is emptied);
 * on failure *lease is left as it was. refs = 1.
 */
int dvm_span_stitch(dvm_pool *pool, const dvm_run *runs, unsigned count, int writable,
                    int priv, int ephemeral, int track, dvm_lease *lease, dvm_span **out,
                    const char **sys);

/*
 * The same into storage the face owns (a table of its own): s->embedded is
 * DVM_SPAN_STORAGE_USED, and the last release, on whichever thread (a
 * zombie flush), gives the memory back, never frees s, and then stores
 * DVM_SPAN_STORAGE_FREE there (release order): only then may the face
 * reuse s. No allocation at all.
 */
#define DVM_SPAN_STORAGE_USED 1
#define DVM_SPAN_STORAGE_FREE 2
int dvm_span_stitch_in(dvm_span *s, dvm_pool *pool, const dvm_run *runs, unsigned count,
                       int writable, int priv, int ephemeral, int track, dvm_lease *lease,
                       const char **sys);

/* A span over memory someone else mapped (a file map, a pool view); refs = 1. */
dvm_span *dvm_span_wrap(void *addr, uint64_t length, enum dvm_span_kind kind);

/*
 * s made a span over a pool view (dvm_pool_view), in storage the face owns:
 * never given back, tracked when it is the registered read-write view.
 */
void dvm_span_pool_view(dvm_span *s, dvm_pool *pool, enum dvm_view kind, void *addr);

/* Give the memory back by its kind (munmap, heap slots), then drop its lease; addr is NULL after. */
int dvm_span_give_back(dvm_span *s);

/* One more reference. */
void dvm_span_ref(dvm_span *s);

/* Drop one reference; the last gives the memory back and frees the span. */
void dvm_span_release(dvm_span *s);

/*
 * The written pages of [off, +len) of a tracked span, counted; with rearm
 * they are write-protected again in the same call, and with sync each run
 * of them is written back (msync MS_SYNC) after.
 */
int dvm_span_written(dvm_span *s, uint64_t off, uint64_t len, int rearm, int sync,
                     uint64_t *pages, const char **sys);

/*
 * Queue a span as a zombie (it keeps its memory and its lease, and the
 * zombie list takes a reference); when the zombies reach max_pages pages
 * they are all dropped together. Returns how many were dropped (0: queued).
 */
uint64_t dvm_zombie_add(dvm_span *s, uint64_t max_pages);

/* Drop every zombie now: adjacent spans of one kind in one call. Returns how many. */
uint64_t dvm_zombie_flush(void);

void dvm_zombie_stats(uint64_t *count, uint64_t *pages);

/* In a forked child: the parent's zombies are not ours to drop (their memory was not inherited, or is the parent's). */
void dvm_zombie_forget(void);

#endif
