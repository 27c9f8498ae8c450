/*
 * Lease records: the leases of attached Buffers (attach.c, ns_attach.c),
 * kept here by number so that JS holds only a number. unmap (release)
 * drops a record by its id; so does the Buffer's guard (quiet.cc) once V8
 * frees the ArrayBuffer, from V8's array-buffer sweeper, on a thread of
 * V8's pool, for every mapping: after unmap that id is stale and drops
 * nothing.
 *
 * That stale drop is the common case and the sweeper runs it while the
 * mapping thread takes and drops records of its own: it must not take a
 * lock the mapping thread takes. With one mutex per shard, the sweeper
 * and the mapping thread met on it about once in 11 mmap+unmap pairs
 * (a futex wait and wake each time, issue 10's two-thread scaling). So a
 * record says whether it holds a lease, and under which serial, in one
 * atomic word: a drop reads it and leaves when the id is not the record's
 * live one (no lock, no write); else one compare-and-swap makes it free
 * (only one dropper wins, whichever thread), and only then is the shard's
 * lock taken, to put the record on the free list. Records live in chunks
 * that never move, so a reader on another thread never reads freed memory.
 *
 * A lease id: record index (22 bits), shard (4 bits), serial (26 bits): 52
 * bits, exact in a double. Shards are per thread (threads take them in
 * turn), each with its own lock and free list on cache lines of their own:
 * worker threads mapping at once do not write one shared word per mmap and
 * unmap.
 */
#include <pthread.h>
#include <stdlib.h>

#include "../core/lease.h"
#include "glue.h"

#define ID_BITS 22
#define SHARD_BITS 4
#define SHARDS (1u << SHARD_BITS)
#define SERIAL_BITS 26
#define SERIAL_MASK ((1u << SERIAL_BITS) - 1)
/* Records come in chunks of 4096 (about 400 KiB, touched as used), up to 2^ID_BITS per shard. */
#define CHUNK_BITS 12
#define CHUNK (1u << CHUNK_BITS)
#define CHUNKS (1u << (ID_BITS - CHUNK_BITS))

typedef struct {
  uint64_t state; /* atomic: serial << 1, | 1 while the record holds a lease */
  int32_t next_free;
  dvm_lease lease; /* written only while the record is the putter's or the winning dropper's */
} record;

typedef struct {
  pthread_mutex_t lock; /* the free list and growth; never taken by a stale drop */
  int32_t free_head;
  /* Read without the lock by drops from any thread: apart from the lock, which the owner writes per mapping. */
  uint32_t n __attribute__((aligned(64))); /* atomic: records made */
  record *chunks[CHUNKS];                  /* atomic pointers; a chunk never moves nor goes */
} __attribute__((aligned(64))) shard;

static shard shards[SHARDS];
static pthread_once_t shards_once = PTHREAD_ONCE_INIT;
static unsigned next_shard; /* atomic: the next thread's shard */
static __thread int my_shard = -1;

static void shards_init(void)
{
  for (unsigned i = 0; i < SHARDS; i++) {
    pthread_mutex_init(&shards[i].lock, NULL);
    shards[i].free_head = -1;
  }
}

static record *at(shard *sh, uint32_t i)
{
  return &__atomic_load_n(&sh->chunks[i >> CHUNK_BITS], __ATOMIC_ACQUIRE)[i & (CHUNK - 1)];
}

/* A free record of the shard (the lock held), or -1 (ENOMEM, or the shard is full). */
static int32_t take_free(shard *sh)
{
  int32_t i = sh->free_head;
  if (i >= 0) {
    sh->free_head = at(sh, (uint32_t)i)->next_free;
    return i;
  }
  uint32_t n = sh->n;
  if (n >= (1u << ID_BITS)) return -1;
  if ((n & (CHUNK - 1)) == 0) {
    record *c = calloc(CHUNK, sizeof *c); /* every state 0: serial 0, free */
    if (!c) return -1;
    __atomic_store_n(&sh->chunks[n >> CHUNK_BITS], c, __ATOMIC_RELEASE);
  }
  __atomic_store_n(&sh->n, n + 1, __ATOMIC_RELEASE);
  return (int32_t)n;
}

/* Keep a lease; returns its id, or -1 (ENOMEM: the caller drops it). */
double dvm_record_put(const dvm_lease *l)
{
  pthread_once(&shards_once, shards_init);
  if (my_shard < 0) my_shard = (int)(__atomic_fetch_add(&next_shard, 1, __ATOMIC_RELAXED) % SHARDS);
  shard *sh = &shards[my_shard];
  pthread_mutex_lock(&sh->lock);
  int32_t i = take_free(sh);
  pthread_mutex_unlock(&sh->lock);
  if (i < 0) return -1;
  record *r = at(sh, (uint32_t)i);
  r->lease = *l;
  r->next_free = -1;
  uint64_t state = __atomic_load_n(&r->state, __ATOMIC_RELAXED) | 1; /* free records are even */
  __atomic_store_n(&r->state, state, __ATOMIC_RELEASE);          /* the lease is written before it is live */
  return ((double)(state >> 1) * SHARDS + my_shard) * (double)(1u << ID_BITS) + i;
}

/*
 * The record an id names (NULL: not an id, or a record never made), its
 * shard and index, and the state word it has while it holds that id's lease.
 */
static record *named(double id, shard **sh, uint32_t *i, uint64_t *live)
{
  if (!(id >= 0) || id > 9007199254740991.0) return NULL;
  uint64_t n = (uint64_t)id;
  *i = (uint32_t)(n & ((1u << ID_BITS) - 1));
  *sh = &shards[(n >> ID_BITS) & (SHARDS - 1)];
  *live = ((n >> (ID_BITS + SHARD_BITS)) & SERIAL_MASK) << 1 | 1;
  return *i < __atomic_load_n(&(*sh)->n, __ATOMIC_ACQUIRE) ? at(*sh, *i) : NULL;
}

/* Drop the lease the id names, if it is still that one; returns whether it was. Any thread. */
bool dvm_record_drop(double id)
{
  shard *sh;
  uint32_t i;
  uint64_t live;
  record *r = named(id, &sh, &i, &live);
  /* Stale (unmapped before V8 freed the buffer): nothing written, nothing locked. */
  if (!r || __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != live) return false;
  uint64_t serial = live >> 1;
  if (!__atomic_compare_exchange_n(&r->state, &live, ((serial + 1) & SERIAL_MASK) << 1, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE))
    return false; /* another thread dropped it first */
  dvm_lease l = r->lease; /* ours alone until it is on the free list */
  pthread_mutex_lock(&sh->lock);
  r->next_free = sh->free_head;
  sh->free_head = (int32_t)i;
  pthread_mutex_unlock(&sh->lock);
  dvm_lease_drop(&l);
  return true;
}

/* Does the id still name a record holding its lease? (A shared guard passes on only from a dropped one: quiet.cc.) */
bool dvm_record_live(double id)
{
  shard *sh;
  uint32_t i;
  uint64_t live;
  record *r = named(id, &sh, &i, &live);
  return r && __atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == live;
}
