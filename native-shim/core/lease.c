/* The lease table, client side (see lease.h and docs/format.md). */
#define _GNU_SOURCE
#include "lease.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Slots one process may hold at once (claimed 8 at a time, kept for its life). */
#define MAX_OWNED 4096
#define CLAIM 8
#define COUNT_MAX ((1ull << DAXVM_LEASE_COUNT_BITS) - 1)
#define START_MAX ((1ull << DAXVM_LEASE_START_BITS) - 1)
/* Runs sorted and merged by gaps up to this many; more get one covering range. */
#define SORT_MAX 512

struct dvm_lease_table {
  unsigned char *base;
  uint32_t slots;
  uint32_t owned[MAX_OWNED]; /* slot + 1; 0 = an entry being filled */
  unsigned nowned;           /* atomic */
  dev_t dev; /* the pool's */
  ino_t ino;
  dev_t file_dev; /* the table file's: a retired table is replaced only by another file */
  ino_t file_ino;
};

#define MAX_TABLES 16
static dvm_lease_table *tables[MAX_TABLES];
static unsigned ntables;
static uint64_t owner_word; /* 0 until read; 0 again in a forked child */

static uint64_t *slot_word(dvm_lease_table *t, uint32_t slot, unsigned off)
{
  return (uint64_t *)(t->base + DAXVM_LEASES_HEADER_BYTES + (size_t)slot * DAXVM_LEASE_SLOT_BYTES + off);
}

static uint32_t *slot_u32(dvm_lease_table *t, uint32_t slot, unsigned off)
{
  return (uint32_t *)(t->base + DAXVM_LEASES_HEADER_BYTES + (size_t)slot * DAXVM_LEASE_SLOT_BYTES + off);
}

/* A forked child is another holder: its parent's slots are not its own. */
static void after_fork_child(void)
{
  __atomic_store_n(&owner_word, 0, __ATOMIC_RELAXED);
  for (unsigned i = 0; i < ntables; i++) __atomic_store_n(&tables[i]->nowned, 0, __ATOMIC_RELAXED);
}

static pthread_once_t fork_hook = PTHREAD_ONCE_INIT;
static void install_fork_hook(void) { pthread_atfork(NULL, NULL, after_fork_child); }

/* Field 22 of /proc/self/stat: the start time in clock ticks since boot. */
static uint64_t read_start_time(void)
{
  char buf[1024];
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (!p) return 0;
  /* after ") " come fields 3, 4, ...: skip 19 of them to reach field 22 */
  p++;
  for (int field = 2; field < 21 && p; field++) p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

uint64_t dvm_lease_owner(void)
{
  uint64_t w = __atomic_load_n(&owner_word, __ATOMIC_ACQUIRE);
  if (w) return w;
  pthread_once(&fork_hook, install_fork_hook);
  w = ((uint64_t)(uint32_t)getpid() << 32) | (read_start_time() & 0xffffffffu);
  __atomic_store_n(&owner_word, w, __ATOMIC_RELEASE);
  return w;
}

const char *dvm_shm_dir(void)
{
  const char *d = getenv("DAXVM_SHM_DIR");
  return d && *d ? d : "/dev/shm";
}

bool dvm_lease_table_retired(const dvm_lease_table *t)
{
  return __atomic_load_n((const uint32_t *)(t->base + DAXVM_LEASES_HEADER_RETIRED_OFF), __ATOMIC_SEQ_CST) != 0;
}

int dvm_lease_table_open(int pool_fd, dvm_lease_table **out)
{
  struct stat pool, st;
  if (fstat(pool_fd, &pool) != 0) return -errno;
  int have = -1;
  for (unsigned i = 0; i < ntables; i++)
    if (tables[i]->dev == pool.st_dev && tables[i]->ino == pool.st_ino) {
      if (!dvm_lease_table_retired(tables[i])) {
        *out = tables[i];
        return 0;
      }
      have = (int)i; /* let go at an unmount: open the table at the path again */
    }
  if (have < 0 && ntables == MAX_TABLES) return -EMFILE;
  unsigned char uuid[16];
  if (pread(pool_fd, uuid, sizeof uuid, DAXVM_SUPERBLOCK_UUID_OFF) != (ssize_t)sizeof uuid) return -EIO;
  char path[512];
  snprintf(path, sizeof path, "%s/daxvm-%llx-%llx-%llx.leases", dvm_shm_dir(),
           (unsigned long long)pool.st_dev, (unsigned long long)pool.st_ino, (unsigned long long)pool.st_uid);
  int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = 0;
  void *base = MAP_FAILED;
  uint32_t slots = 0;
  /* No more open than the pool: same owner and group, no permission bit the pool lacks. */
  if (fstat(fd, &st) != 0) rc = -errno;
  else if (!S_ISREG(st.st_mode) || st.st_uid != pool.st_uid || st.st_gid != pool.st_gid ||
           (st.st_mode & 0777 & ~pool.st_mode) != 0)
    rc = -EPERM;
  else if (st.st_size < DAXVM_LEASES_HEADER_BYTES) rc = -EPROTO;
  if (rc == 0) {
    base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) rc = -errno;
  }
  if (rc == 0) {
    unsigned char *b = base;
    uint64_t dev, ino, pidns;
    uint32_t version, slot_size;
    memcpy(&version, b + DAXVM_LEASES_HEADER_VERSION_OFF, 4);
    memcpy(&slot_size, b + DAXVM_LEASES_HEADER_SLOT_SIZE_OFF, 4);
    memcpy(&slots, b + DAXVM_LEASES_HEADER_SLOTS_OFF, 4);
    memcpy(&dev, b + DAXVM_LEASES_HEADER_POOL_DEV_OFF, 8);
    memcpy(&ino, b + DAXVM_LEASES_HEADER_POOL_INO_OFF, 8);
    memcpy(&pidns, b + DAXVM_LEASES_HEADER_PIDNS_OFF, 8);
    struct stat ns;
    if (stat("/proc/self/ns/pid", &ns) == 0 && (uint64_t)ns.st_ino != pidns)
      rc = -EXDEV; /* the daemon could not tell our pid from another process's */
    else if (memcmp(b + DAXVM_LEASES_HEADER_MAGIC_OFF, DAXVM_LEASES_MAGIC, 8) != 0 || version != DAXVM_LEASES_VERSION ||
        slot_size != DAXVM_LEASE_SLOT_BYTES || dev != (uint64_t)pool.st_dev ||
        ino != (uint64_t)pool.st_ino || memcmp(b + DAXVM_LEASES_HEADER_POOL_UUID_OFF, uuid, 16) != 0 ||
        (uint64_t)st.st_size < DAXVM_LEASES_HEADER_BYTES + (uint64_t)slots * DAXVM_LEASE_SLOT_BYTES)
      rc = -EPROTO;
  }
  close(fd);
  if (rc == 0 && have >= 0 && tables[have]->file_dev == st.st_dev && tables[have]->file_ino == st.st_ino) {
    /* The same file, still retired (no daemon adopted it yet): ours already; take_one will refuse it. */
    munmap(base, (size_t)st.st_size);
    *out = tables[have];
    return 0;
  }
  dvm_lease_table *t = rc == 0 ? calloc(1, sizeof *t) : NULL;
  if (rc == 0 && !t) rc = -ENOMEM;
  if (rc < 0) {
    if (base != MAP_FAILED) munmap(base, (size_t)st.st_size);
    return rc;
  }
  t->base = base;
  t->slots = slots;
  t->dev = pool.st_dev;
  t->ino = pool.st_ino;
  t->file_dev = st.st_dev;
  t->file_ino = st.st_ino;
  if (have >= 0) {
    /* The retired table stays mapped (leases taken in it before may still be dropped there); it is not used again. */
    __atomic_store_n(&tables[have], t, __ATOMIC_RELEASE);
  } else {
    tables[ntables] = t;
    __atomic_store_n(&ntables, ntables + 1, __ATOMIC_RELEASE);
  }
  dvm_lease_owner(); /* read once now, not on a hot path */
  *out = t;
  return 0;
}

/* Claim up to CLAIM free slots for this process; returns how many. */
static unsigned claim(dvm_lease_table *t, uint64_t me)
{
  uint32_t *high = (uint32_t *)(t->base + DAXVM_LEASES_HEADER_HIGH_OFF);
  unsigned got = 0;
  /* From the start: the daemon scans up to the highest slot ever claimed, so keep that low. */
  for (uint32_t s = 0; s < t->slots && got < CLAIM; s++) {
    uint64_t *owner = slot_word(t, s, DAXVM_LEASE_SLOT_OWNER_OFF), zero = 0;
    if (__atomic_load_n(owner, __ATOMIC_RELAXED) != 0) continue;
    if (!__atomic_compare_exchange_n(owner, &zero, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) continue;
    /* Raise the high-water mark before the slot is ever used (the daemon reads it, then scans). */
    uint32_t h = __atomic_load_n(high, __ATOMIC_SEQ_CST);
    while (h < s + 1 && !__atomic_compare_exchange_n(high, &h, s + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    unsigned i = __atomic_fetch_add(&t->nowned, 1, __ATOMIC_ACQ_REL);
    if (i >= MAX_OWNED) {
      __atomic_fetch_sub(&t->nowned, 1, __ATOMIC_ACQ_REL);
      __atomic_store_n(owner, 0, __ATOMIC_RELEASE);
      break;
    }
    __atomic_store_n(&t->owned[i], s + 1, __ATOMIC_RELEASE);
    got++;
  }
  return got;
}

/*
 * Where a thread starts its search of the owned slots: threads apart by 4
 * slots (128 bytes), so that threads mapping at once write slots on cache
 * lines of their own, and a thread reuses the slot it just dropped (hot in
 * its cache). Nothing shared is written to choose.
 */
static unsigned next_thread; /* atomic */
static __thread unsigned thread_base = UINT32_MAX;

/* One slot of ours holding `range`: a free one of those we own, else claimed anew. */
static int take_one(dvm_lease_table *t, uint64_t range, uint32_t ino, uint32_t gen, uint32_t flags, uint64_t me)
{
  if (thread_base == UINT32_MAX) thread_base = __atomic_fetch_add(&next_thread, 1, __ATOMIC_RELAXED) * 4;
  for (int round = 0; round < 2; round++) {
    unsigned n = __atomic_load_n(&t->nowned, __ATOMIC_ACQUIRE);
    if (n > MAX_OWNED) n = MAX_OWNED;
    unsigned h = n ? thread_base % n : 0;
    for (unsigned k = 0; k < n; k++) {
      uint32_t e = __atomic_load_n(&t->owned[(h + k) % n], __ATOMIC_ACQUIRE);
      if (e == 0) continue;
      uint64_t *word = slot_word(t, e - 1, DAXVM_LEASE_SLOT_RANGE_OFF), zero = 0;
      if (__atomic_load_n(word, __ATOMIC_RELAXED) != 0) continue;
      /* Before the range: a daemon that sees the range sees the flags (the compare-and-swap releases them). */
      __atomic_store_n(slot_u32(t, e - 1, DAXVM_LEASE_SLOT_FLAGS_OFF), flags, __ATOMIC_RELAXED);
      if (!__atomic_compare_exchange_n(word, &zero, range, 0, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) continue;
      *slot_u32(t, e - 1, DAXVM_LEASE_SLOT_INO_OFF) = ino; /* for tools only */
      *slot_u32(t, e - 1, DAXVM_LEASE_SLOT_GEN_OFF) = gen;
      return (int)(e - 1);
    }
    if (round == 0 && claim(t, me) == 0) break;
  }
  return -ENOSPC;
}

/* Insertion sort by start (n <= SORT_MAX). */
static void sort_runs(dvm_block_run *r, unsigned n)
{
  for (unsigned i = 1; i < n; i++) {
    dvm_block_run x = r[i];
    unsigned j = i;
    while (j > 0 && r[j - 1].start > x.start) {
      r[j] = r[j - 1];
      j--;
    }
    r[j] = x;
  }
}

/* The ranges to lease: the runs themselves, or merged across the smallest gaps, or one covering range. */
static int plan(const dvm_block_run *runs, unsigned count, dvm_block_run *out, unsigned *nout)
{
  dvm_block_run buf[SORT_MAX];
  unsigned n = 0;
  if (count <= SORT_MAX) {
    for (unsigned i = 0; i < count; i++)
      if (runs[i].count) buf[n++] = runs[i];
    sort_runs(buf, n);
    /* Merge what touches or overlaps. */
    unsigned m = 0;
    for (unsigned i = 0; i < n; i++) {
      if (m && buf[i].start <= buf[m - 1].start + buf[m - 1].count) {
        uint64_t end = buf[i].start + buf[i].count;
        if (end > buf[m - 1].start + buf[m - 1].count) buf[m - 1].count = end - buf[m - 1].start;
      } else {
        buf[m++] = buf[i];
      }
    }
    n = m;
    while (n > DVM_LEASE_SLOTS) { /* close the smallest gap */
      unsigned best = 1;
      for (unsigned i = 2; i < n; i++)
        if (buf[i].start - (buf[i - 1].start + buf[i - 1].count) <
            buf[best].start - (buf[best - 1].start + buf[best - 1].count))
          best = i;
      buf[best - 1].count = buf[best].start + buf[best].count - buf[best - 1].start;
      memmove(&buf[best], &buf[best + 1], (n - best - 1) * sizeof *buf);
      n--;
    }
  } else {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (unsigned i = 0; i < count; i++) {
      if (!runs[i].count) continue;
      if (runs[i].start < lo) lo = runs[i].start;
      if (runs[i].start + runs[i].count > hi) hi = runs[i].start + runs[i].count;
    }
    if (hi > lo) buf[n++] = (dvm_block_run){lo, hi - lo};
  }
  /* A slot holds at most COUNT_MAX blocks: split longer ranges. */
  unsigned k = 0;
  for (unsigned i = 0; i < n; i++) {
    for (uint64_t at = buf[i].start, left = buf[i].count; left > 0;) {
      uint64_t c = left < COUNT_MAX ? left : COUNT_MAX;
      if (k == DVM_LEASE_SLOTS || at + c - 1 > START_MAX) return -E2BIG;
      out[k++] = (dvm_block_run){at, c};
      at += c;
      left -= c;
    }
  }
  *nout = k;
  return 0;
}

/*
 * Does a range the lease holds meet a run the newest durable journal commit
 * vouches for (the header's vouch_runs)? Read between two equal even loads
 * of vouch_gen; a daemon that stays mid-rewrite (it died there) answers yes
 * after a while, and the caller's confirm then fails and it falls back.
 */
static bool meets_vouched(dvm_lease_table *t, const dvm_block_run *ranges, unsigned n)
{
  const uint32_t *gen = (const uint32_t *)(t->base + DAXVM_LEASES_HEADER_VOUCH_GEN_OFF);
  const uint32_t *count = (const uint32_t *)(t->base + DAXVM_LEASES_HEADER_VOUCHED_OFF);
  const uint64_t *words = (const uint64_t *)(t->base + DAXVM_LEASES_HEADER_VOUCH_RUNS_OFF);
  for (int tries = 0; tries < 10000; tries++) {
    uint32_t g = __atomic_load_n(gen, __ATOMIC_SEQ_CST);
    if (g & 1) continue;
    uint32_t c = __atomic_load_n(count, __ATOMIC_SEQ_CST);
    if (c > DAXVM_LEASE_VOUCH_RUNS_MAX) c = DAXVM_LEASE_VOUCH_RUNS_MAX;
    bool meets = false;
    for (uint32_t i = 0; i < c && !meets; i++) {
      uint64_t w = __atomic_load_n(&words[i], __ATOMIC_SEQ_CST);
      uint64_t start = w >> DAXVM_LEASE_COUNT_BITS, end = start + (w & COUNT_MAX);
      for (unsigned k = 0; k < n && !meets; k++)
        meets = ranges[k].start < end && start < ranges[k].start + ranges[k].count;
    }
    if (__atomic_load_n(gen, __ATOMIC_SEQ_CST) == g) return meets;
  }
  return true;
}

int dvm_lease_take(dvm_lease_table *t, const dvm_block_run *runs, unsigned count, uint32_t ino,
                   uint32_t gen, bool writable, dvm_lease *out)
{
  dvm_block_run ranges[DVM_LEASE_SLOTS];
  unsigned n = 0;
  memset(out, 0, sizeof *out);
  int rc = plan(runs, count, ranges, &n);
  if (rc < 0) return rc;
  uint64_t me = dvm_lease_owner();
  out->table = t;
  for (unsigned i = 0; i < n; i++) {
    uint64_t range = (ranges[i].start << DAXVM_LEASE_COUNT_BITS) | ranges[i].count;
    int slot = take_one(t, range, ino, gen, writable ? DAXVM_LEASE_WRITABLE : 0, me);
    if (slot < 0) {
      dvm_lease_drop(out);
      return slot;
    }
    out->slot[out->n++] = (uint32_t)slot;
  }
  /* The compare-and-swaps were full fences already; the caller now reads again where the blocks are. */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  /* A daemon letting the table go stores `retired`, then scans: either it saw these slots, or we see it. */
  if (dvm_lease_table_retired(t)) {
    dvm_lease_drop(out);
    return -ESTALE;
  }
  /*
   * A daemon vouching for blocks by checksum publishes them, then scans the
   * writable leases: either it saw ours (and did not vouch), or we see its
   * runs and store nothing there before it confirmed that commit.
   */
  if (writable && meets_vouched(t, ranges, n)) {
    dvm_lease_drop(out);
    return -EAGAIN;
  }
  return 0;
}

void dvm_lease_drop(dvm_lease *l)
{
  dvm_lease_table *t = l->table;
  if (!t) return;
  /* A forked child holds copies of its parent's leases: they are not its to drop. */
  uint64_t me = __atomic_load_n(&owner_word, __ATOMIC_ACQUIRE);
  for (uint32_t i = 0; i < l->n; i++) {
    if (me && __atomic_load_n(slot_word(t, l->slot[i], DAXVM_LEASE_SLOT_OWNER_OFF), __ATOMIC_RELAXED) == me)
      __atomic_store_n(slot_word(t, l->slot[i], DAXVM_LEASE_SLOT_RANGE_OFF), 0, __ATOMIC_RELEASE);
  }
  l->table = NULL;
  l->n = 0;
}
