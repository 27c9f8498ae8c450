/*
 * The shared namespace's view of the mount table (see ns.h): snapshots of
 * /proc/self/mountinfo, made again when the kernel says the table changed
 * (poll on the open file: POLLPRI), never freed (a snapshot in use by
 * another thread stays valid; mount changes are rare), and the region of
 * each daxvm mount, opened on first use and checked (ns_open_region).
 */
#define _GNU_SOURCE
#include "ns_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lease.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int mountinfo_fd = -1;
static ns_snap *current;              /* atomic */
static uint64_t polled_tick;          /* atomic: the tick the mount table was last polled */
static ns_region *regions[NS_MAX_REGIONS];
static unsigned nregions;             /* atomic */

/* Undo mountinfo's octal escapes (\040 for a space...) in place. */
static void unescape(char *s)
{
  char *w = s;
  for (char *r = s; *r; r++) {
    if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
      *w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
      r += 3;
    } else {
      *w++ = *r;
    }
  }
  *w = 0;
}

static int has_opt(const char *opts, const char *opt)
{
  size_t n = strlen(opt);
  for (const char *p = opts; p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && memcmp(p, opt, n) == 0) return 1;
    p = e ? e + 1 : NULL;
  }
  return 0;
}

static long opt_num(const char *opts, const char *key)
{
  const char *p = strstr(opts, key);
  while (p && p != opts && p[-1] != ',') p = strstr(p + 1, key);
  return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

static ns_region *region_for(uint64_t mount_id, const char *mountpoint, const char *pool)
{
  unsigned n = __atomic_load_n(&nregions, __ATOMIC_ACQUIRE);
  /* Mount ids are reused: the same id, mount point and pool is the same namespace (its region reopened when dead). */
  for (unsigned i = 0; i < n; i++)
    if (regions[i]->mount_id == mount_id && strcmp(regions[i]->mountpoint, mountpoint) == 0 && strcmp(regions[i]->pool, pool) == 0)
      return regions[i];
  if (n == NS_MAX_REGIONS) return NULL;
  ns_region *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->index = (int)n;
  r->mount_id = mount_id;
  r->mountpoint = strdup(mountpoint);
  r->pool = strdup(pool);
  regions[n] = r;
  __atomic_store_n(&nregions, n + 1, __ATOMIC_RELEASE);
  return r;
}

ns_region *ns_region_at(int index)
{
  unsigned n = __atomic_load_n(&nregions, __ATOMIC_ACQUIRE);
  return index >= 0 && (unsigned)index < n ? regions[index] : NULL;
}

/* Read the whole mount table into a new snapshot (NULL on failure). Called with the lock held. */
static ns_snap *read_snapshot(void)
{
  size_t cap = 1 << 16, len = 0;
  char *text = malloc(cap);
  if (!text) return NULL;
  if (lseek(mountinfo_fd, 0, SEEK_SET) < 0) { free(text); return NULL; }
  for (;;) {
    if (len + 4096 > cap) {
      char *more = realloc(text, cap *= 2);
      if (!more) { free(text); return NULL; }
      text = more;
    }
    ssize_t got = read(mountinfo_fd, text + len, cap - len - 1);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) { free(text); return NULL; }
    if (got == 0) break;
    len += (size_t)got;
  }
  text[len] = 0;
  unsigned lines = 0;
  for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
  ns_snap *s = calloc(1, sizeof *s + (lines + 1) * sizeof s->m[0]);
  if (!s) { free(text); return NULL; }
  s->text = text;
  for (char *line = text, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    /* id parent major:minor root mountpoint options [optional...] - fstype source superoptions */
    char *f[6], *save = NULL, *tok = strtok_r(line, " ", &save);
    int nf = 0;
    while (tok && nf < 6) { f[nf++] = tok; tok = strtok_r(NULL, " ", &save); }
    if (nf < 6) continue;
    while (tok && strcmp(tok, "-") != 0) tok = strtok_r(NULL, " ", &save);
    char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
    char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
    char *super = source ? strtok_r(NULL, " ", &save) : NULL;
    if (!super) continue;
    ns_mount *m = &s->m[s->n++];
    m->id = strtoull(f[0], NULL, 10);
    m->parent = strtoull(f[1], NULL, 10);
    unescape(f[4]);
    m->mountpoint = f[4];
    m->len = strlen(f[4]);
    if (m->len == 1) m->len = 0; /* "/" is the empty prefix */
    if (strcmp(fstype, "fuse.daxvm") == 0 && strcmp(f[3], "/") == 0) {
      unescape(source);
      m->region = region_for(m->id, f[4], source);
      m->read_only = has_opt(f[5], "ro") || has_opt(super, "ro");
      m->allow_other = has_opt(super, "allow_other");
      m->user_id = opt_num(super, "user_id=");
      m->group_id = opt_num(super, "group_id=");
    }
  }
  /* The root: the mount at "/" whose parent is not in the table. */
  s->root = s->n ? s->m[0].id : 0;
  for (unsigned i = 0; i < s->n; i++) {
    if (s->m[i].len != 0) continue;
    int orphan = 1;
    for (unsigned j = 0; j < s->n; j++) orphan &= s->m[j].id != s->m[i].parent;
    if (orphan) { s->root = s->m[i].id; break; }
  }
  /* Mounts on top of each: a walk inside a mount with none needs no look for one per name. */
  for (unsigned i = 0; i < s->n; i++)
    for (unsigned j = 0; j < s->n; j++) s->m[i].children += s->m[j].parent == s->m[i].id && s->m[j].id != s->m[i].id;
  return s;
}

uint64_t ns_tick(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const ns_snap *ns_snapshot(void)
{
  ns_snap *s = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
  uint64_t tick = ns_tick();
  if (s && __atomic_load_n(&polled_tick, __ATOMIC_RELAXED) == tick) return s; /* polled in this tick */
  __atomic_store_n(&polled_tick, tick, __ATOMIC_RELAXED);
  if (s) {
    struct pollfd p = {.fd = mountinfo_fd, .events = POLLPRI};
    if (poll(&p, 1, 0) == 0) return s; /* unchanged */
  }
  pthread_mutex_lock(&lock);
  if (mountinfo_fd < 0) mountinfo_fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (mountinfo_fd >= 0) {
    if (s == __atomic_load_n(&current, __ATOMIC_ACQUIRE)) { /* nobody else made one meanwhile */
      struct pollfd p = {.fd = mountinfo_fd, .events = POLLPRI};
      poll(&p, 1, 0); /* take the change we are about to read */
      ns_snap *fresh = read_snapshot();
      if (fresh) __atomic_store_n(&current, fresh, __ATOMIC_RELEASE); /* the old one stays valid */
    }
  }
  s = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
  pthread_mutex_unlock(&lock);
  return s;
}

/* The mount the walk reaches at `path` (len bytes) from mount `in`: stacked mounts taken in turn. */
const ns_mount *ns_mount_at(const ns_snap *s, uint64_t *in, const char *path, size_t len)
{
  const ns_mount *hit = NULL;
  for (int again = 1; again;) {
    again = 0;
    for (unsigned i = 0; i < s->n; i++) {
      const ns_mount *m = &s->m[i];
      if (m->len == len && m->parent == *in && m->id != *in && memcmp(m->mountpoint, path, len) == 0) {
        *in = m->id;
        hit = m;
        again = 1;
        break;
      }
    }
  }
  return hit;
}

/* ---- regions ---------------------------------------------------------------------- */

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t u64_at(const unsigned char *b, size_t off) { uint64_t v; memcpy(&v, b + off, 8); return v; }
static uint32_t u32_at(const unsigned char *b, size_t off) { uint32_t v; memcpy(&v, b + off, 4); return v; }

/* Start time (field 22 of /proc/<pid>/stat), 0 when the process is gone. */
static uint64_t start_time_of(uint32_t pid)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%u/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  p++;
  for (int field = 2; field < 21 && p; field++) p = strchr(p + 1, ' ');
  return p ? strtoull(p + 1, NULL, 10) : 0;
}

static int open_region(ns_region *r, ns_map **out)
{
  struct stat pool, st;
  int pfd = open(r->pool, O_RDONLY | O_CLOEXEC);
  if (pfd < 0) return DVM_NS_NO_REGION;
  unsigned char uuid[16];
  int ok = fstat(pfd, &pool) == 0 && pread(pfd, uuid, 16, DAXVM_SUPERBLOCK_UUID_OFF) == 16;
  close(pfd);
  if (!ok) return DVM_NS_NO_REGION;
  char path[512];
  snprintf(path, sizeof path, "%s/daxvm-%llx-%llx-%llx.ns", dvm_shm_dir(), (unsigned long long)pool.st_dev,
           (unsigned long long)pool.st_ino, (unsigned long long)pool.st_uid);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return DVM_NS_NO_REGION;
  int rc = 0;
  /* No more open than the pool: same owner and group, no permission bit the pool lacks. */
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != pool.st_uid || st.st_gid != pool.st_gid ||
      (st.st_mode & 0777 & ~pool.st_mode) != 0 || st.st_size < DAXVM_NS_HEADER_BYTES)
    rc = DVM_NS_NO_REGION;
  unsigned char *b = MAP_FAILED;
  if (rc == 0) {
    b = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (b == MAP_FAILED) rc = DVM_NS_NO_REGION;
  }
  close(fd);
  if (rc) return rc;
  struct stat ns_pid;
  uint64_t pidns = stat("/proc/self/ns/pid", &ns_pid) == 0 ? (uint64_t)ns_pid.st_ino : 0;
  uint64_t size = u64_at(b, DAXVM_NS_HEADER_TOTAL_SIZE_OFF);
  uint32_t icount = u32_at(b, DAXVM_NS_HEADER_INODE_COUNT_OFF), buckets = u32_at(b, DAXVM_NS_HEADER_BUCKET_COUNT_OFF);
  uint32_t names = u32_at(b, DAXVM_NS_HEADER_NAME_COUNT_OFF), granules = u32_at(b, DAXVM_NS_HEADER_HEAP_GRANULES_OFF);
  uint64_t ioff = u64_at(b, DAXVM_NS_HEADER_INODES_OFF_OFF), boff = u64_at(b, DAXVM_NS_HEADER_BUCKETS_OFF_OFF);
  uint64_t noff = u64_at(b, DAXVM_NS_HEADER_NAMES_OFF_OFF), hoff = u64_at(b, DAXVM_NS_HEADER_HEAP_OFF_OFF);
  if (memcmp(b + DAXVM_NS_HEADER_MAGIC_OFF, DAXVM_NS_MAGIC, 8) != 0 || u32_at(b, DAXVM_NS_HEADER_VERSION_OFF) != DAXVM_NS_VERSION ||
      u64_at(b, DAXVM_NS_HEADER_POOL_DEV_OFF) != (uint64_t)pool.st_dev || u64_at(b, DAXVM_NS_HEADER_POOL_INO_OFF) != (uint64_t)pool.st_ino ||
      memcmp(b + DAXVM_NS_HEADER_POOL_UUID_OFF, uuid, 16) != 0 || size > (uint64_t)st.st_size ||
      u64_at(b, DAXVM_NS_HEADER_PIDNS_OFF) != pidns || (buckets & (buckets - 1)) != 0 || buckets == 0 ||
      ioff + (uint64_t)icount * DAXVM_NS_INODE_BYTES > size || boff + (uint64_t)buckets * 4 > size ||
      noff + (uint64_t)names * DAXVM_NS_NAME_BYTES > size || hoff + (uint64_t)granules * DAXVM_NS_GRANULE > size)
    rc = DVM_NS_NO_REGION;
  uint32_t pid = u32_at(b, DAXVM_NS_HEADER_DAEMON_PID_OFF);
  if (rc == 0 && start_time_of(pid) != u64_at(b, DAXVM_NS_HEADER_DAEMON_START_OFF)) rc = DVM_NS_DEAD;
  if (rc) {
    munmap(b, (size_t)st.st_size);
    return rc;
  }
  ns_map *m = calloc(1, sizeof *m);
  if (!m) {
    munmap(b, (size_t)st.st_size);
    return DVM_NS_NO_REGION;
  }
  m->gen = u32_at(b, DAXVM_NS_HEADER_REGION_GEN_OFF);
  m->base = b;
  m->size = size;
  m->map_len = (uint64_t)st.st_size;
  m->pid = pid;
  m->inode_count = icount;
  m->bucket_mask = buckets - 1;
  m->name_count = names;
  m->heap_granules = granules;
  m->inodes = b + ioff;
  m->buckets = (const uint32_t *)(b + boff);
  m->names = b + noff;
  m->heap = b + hoff;
  m->live = (const uint32_t *)(b + DAXVM_NS_HEADER_LIVE_OFF);
  *out = m;
  return 0;
}

int ns_region_ready(ns_region *r, const ns_map **out)
{
  int st = __atomic_load_n(&r->state, __ATOMIC_ACQUIRE);
  ns_map *m = __atomic_load_n(&r->map, __ATOMIC_ACQUIRE);
  uint64_t tick = ns_tick();
  if (st == NS_READY && m) {
    if (__atomic_load_n(m->live, __ATOMIC_ACQUIRE) == 1) {
      if (__atomic_load_n(&r->alive_tick, __ATOMIC_RELAXED) == tick) {
        *out = m;
        return 0;
      }
      /* Once a tick: a daemon SIGKILLed cannot clear live, but its pid goes. */
      if (!(kill((pid_t)m->pid, 0) != 0 && errno == ESRCH)) {
        __atomic_store_n(&r->alive_tick, tick, __ATOMIC_RELAXED);
        *out = m;
        return 0;
      }
    }
    /* Dead: a new daemon (or a new mount with a reused id) may have made a new region; look once a tick. */
    if (r->retry_at == (double)tick) return DVM_NS_DEAD;
  } else if (st > 0 && now_s() < r->retry_at) {
    return st;
  }
  pthread_mutex_lock(&lock);
  ns_map *fresh = NULL;
  st = open_region(r, &fresh);
  if (st == 0 && m && fresh->gen == m->gen) { /* the same region, still dead */
    munmap((void *)fresh->base, fresh->map_len);
    free(fresh);
    r->retry_at = (double)tick;
    st = DVM_NS_DEAD;
  } else if (st == 0) {
    __atomic_store_n(&r->map, fresh, __ATOMIC_RELEASE); /* the old map stays mapped: readers may be on it */
    __atomic_store_n(&r->alive_tick, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->state, NS_READY, __ATOMIC_RELEASE);
  } else if (m && st == DVM_NS_DEAD) {
    r->retry_at = (double)tick;
  } else {
    r->retry_at = now_s() + 1.0; /* a failure is remembered for a second */
    __atomic_store_n(&r->state, st, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&lock);
  if (st) return st;
  *out = fresh;
  return __atomic_load_n(fresh->live, __ATOMIC_ACQUIRE) == 1 ? 0 : DVM_NS_DEAD;
}

int dvm_ns_mount_info(int mount, const char **mountpoint, const char **pool, uint64_t *mount_id)
{
  ns_region *r = ns_region_at(mount);
  if (!r) return -ENOENT;
  *mountpoint = r->mountpoint;
  *pool = r->pool;
  *mount_id = r->mount_id;
  return 0;
}
