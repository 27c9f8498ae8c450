/*
 * The shared namespace, reader side: the path walk and lock-free reads of
 * records and name entries (see ns.h, docs/format.md "The namespace");
 * the permission checks are ns_perm.c's, the host's part of a path
 * ns_host.c's. Over 400 lines: the walk is one function over one path
 * buffer, and the reads it makes belong beside it.
 */
#define _GNU_SOURCE
#include "ns_internal.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRIES 64

static uint32_t load_seq(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static uint32_t u32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void backoff(int attempt)
{
  if (attempt > 8) sched_yield();
}

/* A consistent copy of inode ino's record: 0, DVM_NS_UNKNOWN (not published), DVM_NS_BUSY. */
static int read_rec(const ns_map *r, uint32_t ino, rec_t *out)
{
  if (ino < 1 || ino >= r->inode_count) return DVM_NS_UNKNOWN;
  const unsigned char *p = r->inodes + (size_t)ino * DAXVM_NS_INODE_BYTES;
  for (int attempt = 0; attempt < TRIES; attempt++) {
    uint32_t s1 = load_seq(p + DAXVM_NS_INODE_SEQ_OFF);
    if (s1 & 1) { backoff(attempt); continue; }
    unsigned char copy[DAXVM_NS_INODE_BYTES];
    memcpy(copy, p, sizeof copy);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (load_seq(p + DAXVM_NS_INODE_SEQ_OFF) != s1) { backoff(attempt); continue; }
    out->seq = s1;
    out->generation = u32(copy + DAXVM_NS_INODE_GENERATION_OFF);
    out->mode = u32(copy + DAXVM_NS_INODE_MODE_OFF);
    out->uid = u32(copy + DAXVM_NS_INODE_UID_OFF);
    out->gid = u32(copy + DAXVM_NS_INODE_GID_OFF);
    out->nlink = u32(copy + DAXVM_NS_INODE_NLINK_OFF);
    out->size = u64(copy + DAXVM_NS_INODE_SIZE_OFF);
    out->parent = u32(copy + DAXVM_NS_INODE_PARENT_OFF);
    out->flags = u32(copy + DAXVM_NS_INODE_FLAGS_OFF);
    out->extents = u32(copy + DAXVM_NS_INODE_EXTENTS_OFF);
    out->extent_count = u32(copy + DAXVM_NS_INODE_EXTENT_COUNT_OFF);
    return out->mode == 0 ? DVM_NS_UNKNOWN : 0;
  }
  return DVM_NS_BUSY;
}

static uint32_t fnv(uint32_t parent, const char *name, size_t len)
{
  uint32_t h = DAXVM_NS_FNV_OFFSET;
  for (int i = 0; i < 4; i++) h = (h ^ ((parent >> (8 * i)) & 0xff)) * DAXVM_NS_FNV_PRIME;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)name[i]) * DAXVM_NS_FNV_PRIME;
  return h;
}

/*
 * Look name up in directory parent: 1 found (*ino, and the entry and its
 * sequence word to check again later), 0 no entry in the chain, -1 the
 * chain changed under us (start over).
 */
static int chain_lookup(const ns_map *r, uint32_t parent, const char *name, size_t len, uint32_t *ino,
                        const unsigned char **entry, uint32_t *entry_seq)
{
  uint32_t hash = fnv(parent, name, len);
  uint32_t bucket = hash & r->bucket_mask;
  uint32_t link = __atomic_load_n(&r->buckets[bucket], __ATOMIC_ACQUIRE);
  for (uint32_t steps = 0; link != 0; steps++) {
    if (link > r->name_count || steps > r->name_count) return -1;
    const unsigned char *e = r->names + (size_t)(link - 1) * DAXVM_NS_NAME_BYTES;
    uint32_t s1 = load_seq(e + DAXVM_NS_NAME_SEQ_OFF);
    if (s1 & 1) return -1;
    uint32_t e_bucket = u32(e + DAXVM_NS_NAME_BUCKET_OFF), e_parent = u32(e + DAXVM_NS_NAME_PARENT_OFF);
    uint32_t e_ino = u32(e + DAXVM_NS_NAME_INO_OFF), e_hash = u32(e + DAXVM_NS_NAME_HASH_OFF);
    uint16_t e_len;
    memcpy(&e_len, e + DAXVM_NS_NAME_NAME_LEN_OFF, 2);
    uint32_t e_name = u32(e + DAXVM_NS_NAME_NAME_OFF), next = u32(e + DAXVM_NS_NAME_NEXT_OFF);
    int match = 0;
    if (e_bucket == bucket && e_parent == parent && e_hash == hash && e_len == len && e_name != 0 &&
        (uint64_t)e_name + (len + DAXVM_NS_GRANULE - 1) / DAXVM_NS_GRANULE <= r->heap_granules)
      match = memcmp(r->heap + (size_t)e_name * DAXVM_NS_GRANULE, name, len) == 0;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (load_seq(e + DAXVM_NS_NAME_SEQ_OFF) != s1 || e_bucket != bucket) return -1;
    if (match) {
      *ino = e_ino;
      *entry = e;
      *entry_seq = s1;
      return 1;
    }
    link = next;
  }
  return 0;
}

/* What a resolve answers of the file it found. */
static void fill_file(dvm_ns_file *out, const ns_region *reg, const ns_map *r, uint32_t ino, const rec_t *rec, int plain)
{
  out->mount = reg->index;
  out->region_gen = r->gen;
  out->ino = ino;
  out->generation = rec->generation;
  out->seq = rec->seq;
  out->mode = rec->mode;
  out->uid = rec->uid;
  out->gid = rec->gid;
  out->flags = rec->flags;
  out->size = rec->size;
  out->plain = plain;
}

/* One name in a directory: 0 (*child filled), -ENOENT, or a fallback code. */
static int step(const ns_map *r, rec_t *dir, uint32_t dir_ino, const char *name, size_t len, uint32_t *child_ino,
                rec_t *child)
{
  for (int attempt = 0; attempt < TRIES; attempt++) {
    uint32_t ino;
    const unsigned char *e;
    uint32_t es;
    int found = chain_lookup(r, dir_ino, name, len, &ino, &e, &es);
    if (found < 0) { backoff(attempt); continue; }
    if (found == 0) {
      /* No entry: the name does not exist if the directory's names are all here and none changed meanwhile. */
      __atomic_thread_fence(__ATOMIC_ACQUIRE);
      if (load_seq(r->inodes + (size_t)dir_ino * DAXVM_NS_INODE_BYTES) == dir->seq)
        return dir->flags & DAXVM_NS_INODE_NAMES ? -ENOENT : DVM_NS_UNKNOWN;
      int rc = read_rec(r, dir_ino, dir); /* it changed: read it again, and the chain */
      if (rc) return rc;
      continue;
    }
    int rc = read_rec(r, ino, child);
    if (rc == DVM_NS_BUSY) return rc;
    /* The entry still names it: the record read belongs to the name. */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (load_seq(e + DAXVM_NS_NAME_SEQ_OFF) != es) { backoff(attempt); continue; }
    if (rc) return rc;
    *child_ino = ino;
    return 0;
  }
  return DVM_NS_BUSY;
}

/*
 * The mount the last walk of this thread entered, and the mount table
 * (snapshot) it was found in. Outside a daxvm mount the walk reads nothing
 * but the mount table, so a path that starts with the same mount point, in
 * the same snapshot (snapshots are never freed: no reuse of the address),
 * reaches the same mount: the walk starts there.
 */
static __thread const ns_snap *last_snap;
static __thread const ns_mount *last_mnt;

/* The first walk met '..' before any daxvm mount: the second one (follow) takes it as the kernel does. */
#define HOST_DOTDOT (-100000)

/*
 * The walk. follow 0: the host's part of the path is taken as written (no
 * system call; a symbolic link or '..' there is not seen). follow 1: it is
 * walked as the kernel walks it (ns_host_step: readlink, '..' of a real
 * directory), so a mount point reached through a symbolic link is found.
 */
static int walk(const char *path, size_t len, int want, dvm_ns_file *out, int follow)
{
  char abs[PATH_MAX + 1];
  size_t alen = 0;
  size_t cwdlen = 0; /* a relative path: the cwd's length in abs, whose directories the kernel does not check */
  if (len == 0) return -ENOENT;
  if (path[0] != '/') {
    if (!getcwd(abs, sizeof abs)) return DVM_NS_TOO_LONG;
    alen = cwdlen = strlen(abs);
    if (alen + 1 + len > PATH_MAX) return DVM_NS_TOO_LONG;
    abs[alen++] = '/';
  } else if (len > PATH_MAX) {
    return DVM_NS_TOO_LONG;
  }
  memcpy(abs + alen, path, len);
  alen += len;

  const ns_snap *s = ns_snapshot();
  if (!s) return DVM_NS_NOT_DAXVM;
  char cur[PATH_MAX + 1]; /* the path consumed so far, normalized ("" is "/") */
  size_t clen = 0;
  uint64_t in = s->root;
  const ns_mount *mnt = NULL;
  ns_region *reg = NULL;
  const ns_map *r = NULL;
  ns_cred *cred = ns_credentials();
  uint32_t ino = 0;
  rec_t rec;
  int rc;

  size_t i = 0;
  const ns_mount *last = s == last_snap ? last_mnt : NULL;
  if (last && last->len > 0 && alen > last->len && abs[last->len] == '/' && memcmp(abs, last->mountpoint, last->len) == 0) {
    mnt = last;
    memcpy(cur, abs, last->len);
    clen = i = last->len;
  } else {
    /* A daxvm mount on "/" itself. */
    const ns_mount *top = ns_mount_at(s, &in, "", 0);
    if (top && top->region) mnt = top;
  }
  int trailing_slash = abs[alen - 1] == '/';
  int plain = path[0] == '/' && !trailing_slash;
  int links = 0;
  for (;;) {
    if (mnt && !r) { /* entering the mount */
      if (!ns_allowed(mnt, cred)) return DVM_NS_NOT_ALLOWED;
      /* After a link, the check from "/" may be stricter than the kernel's (a relative link): it decides then. */
      if ((rc = ns_check_above(mnt, cwdlen ? abs : NULL, cwdlen))) return follow && rc == -EACCES ? DVM_NS_SYMLINK : rc;
      reg = mnt->region;
      if ((rc = ns_region_ready(reg, &r))) return rc;
      ino = DAXVM_ROOT_INO;
      if ((rc = read_rec(r, ino, &rec))) return rc;
      last_snap = s;
      last_mnt = mnt;
    }
    size_t slashes = i;
    while (i < alen && abs[i] == '/') i++;
    if (i - slashes > 1) plain = 0;
    if (i >= alen) break;
    size_t start = i;
    while (i < alen && abs[i] != '/') i++;
    const char *name = abs + start;
    size_t nlen = i - start;
    if (r && !S_ISDIR(rec.mode)) return -ENOTDIR;
    if (r && start > cwdlen && (rc = ns_check(&rec, 1, cred))) return rc; /* not the cwd's own directories */
    if (name[0] == '.' && (nlen == 1 || (nlen == 2 && name[1] == '.'))) plain = 0;
    if (nlen == 1 && name[0] == '.') continue;
    if (nlen == 2 && name[0] == '.' && name[1] == '.') {
      if (!r && follow) { /* abs becomes the parent of cur and the rest: walked again from "/" */
        if ((rc = ns_host_step(abs, &alen, i, cur, clen, 1, &links)) != NS_HOST_AGAIN) return rc;
        i = clen = cwdlen = 0;
        in = s->root;
        plain = 0;
        continue;
      }
      if (!r) return HOST_DOTDOT;
      if (ino == DAXVM_ROOT_INO) return DVM_NS_DOTDOT;
      ino = rec.parent;
      rc = read_rec(r, ino, &rec);
      if (rc) return rc;
      while (clen > 0 && cur[clen - 1] != '/') clen--;
      if (clen > 0) clen--;
      continue;
    }
    if (nlen > DAXVM_NAME_MAX) return r ? -ENAMETOOLONG : DVM_NS_NOT_DAXVM;
    if (clen + 1 + nlen > PATH_MAX) return DVM_NS_TOO_LONG;
    cur[clen++] = '/';
    memcpy(cur + clen, name, nlen);
    clen += nlen;
    if (!r) {
      const ns_mount *m = ns_mount_at(s, &in, cur, clen);
      if (m && m->region) mnt = m;
      else if (!m && follow) { /* a symbolic link? abs becomes its target and the rest, walked again from "/" */
        if ((rc = ns_host_step(abs, &alen, i, cur, clen, 0, &links)) == 0) continue;
        if (rc != NS_HOST_AGAIN) return rc;
        i = clen = cwdlen = 0;
        in = s->root;
        plain = 0;
      }
      continue;
    }
    if (ino == DAXVM_ROOT_INO && nlen == 6 && memcmp(name, ".daxvm", 6) == 0) return DVM_NS_CONTROL;
    uint32_t child_ino;
    rec_t child;
    rc = step(r, &rec, ino, name, nlen, &child_ino, &child);
    if (rc) return rc;
    uint64_t here = mnt->id;
    if (mnt->children && ns_mount_at(s, &here, cur, clen)) return DVM_NS_SUBMOUNT;
    if (S_ISLNK(child.mode)) return DVM_NS_SYMLINK;
    ino = child_ino;
    rec = child;
  }
  if (!r) return DVM_NS_NOT_DAXVM;
  if (S_ISDIR(rec.mode)) {
    if (want & DVM_NS_WRITE) return -EISDIR;
    rc = ns_check(&rec, DVM_NS_READ, cred);
    return rc ? rc : -EISDIR;
  }
  if (trailing_slash) return -ENOTDIR;
  if (!S_ISREG(rec.mode)) return DVM_NS_SPECIAL;
  if ((want & DVM_NS_WRITE) && mnt->read_only) return -EROFS;
  rc = ns_check(&rec, want & (DVM_NS_READ | DVM_NS_WRITE), cred);
  if (rc) return rc;
  fill_file(out, reg, r, ino, &rec, plain);
  return 0;
}

int dvm_ns_resolve(const char *path, size_t len, int want, dvm_ns_file *out)
{
  int rc = walk(path, len, want, out, 0);
  /* No daxvm mount as written: a symbolic link or '..' on the host's part of the path may lead to one. */
  if (rc == DVM_NS_NOT_DAXVM || rc == HOST_DOTDOT) rc = walk(path, len, want, out, 1);
  return rc == HOST_DOTDOT ? DVM_NS_DOTDOT : rc;
}

/*
 * The file an open fd names, by its inode number (statx of the fd), in the
 * region a walk of this mount found before: no path, so no readlink of
 * /proc/self/fd and no walk. The kernel checked the path (search
 * permission, the names) at open; what depends on the caller now is checked
 * as the walk does at its end (allow_other, a read-only mount, the file's
 * mode). The number names the fd's own inode: node ids are inode numbers and
 * the daemon keeps an inode (pinned, if unlinked) while the kernel holds it,
 * which it does while the fd is open; a new daemon makes a region with a new
 * region_gen, refused here.
 */
int dvm_ns_file_of_ino(int mount, uint32_t region_gen, uint64_t ino, int want, dvm_ns_file *out)
{
  ns_region *reg = ns_region_at(mount);
  if (!reg) return DVM_NS_NO_REGION;
  const ns_snap *s = ns_snapshot();
  if (!s) return DVM_NS_NOT_DAXVM;
  ns_cred *cred = ns_credentials();
  int seen = 0;
  for (unsigned i = 0; i < s->n; i++) { /* every mount of it now (bind mounts): each must allow it */
    const ns_mount *m = &s->m[i];
    if (m->region != reg) continue;
    seen = 1;
    if (!ns_allowed(m, cred)) return DVM_NS_NOT_ALLOWED;
    if ((want & DVM_NS_WRITE) && m->read_only) return -EROFS;
  }
  if (!seen) return DVM_NS_NOT_DAXVM; /* unmounted since */
  const ns_map *r;
  int rc = ns_region_ready(reg, &r);
  if (rc) return rc;
  if (r->gen != region_gen) return DVM_NS_DEAD;
  if (ino == 0 || ino > UINT32_MAX) return DVM_NS_UNKNOWN;
  rec_t rec;
  if ((rc = read_rec(r, (uint32_t)ino, &rec))) return rc;
  if (!S_ISREG(rec.mode)) return DVM_NS_SPECIAL;
  rc = ns_check(&rec, want & (DVM_NS_READ | DVM_NS_WRITE), cred);
  if (rc) return rc;
  fill_file(out, reg, r, (uint32_t)ino, &rec, 0);
  return 0;
}

/* The map a file was resolved in, if it is still the one in use. */
static const ns_map *map_of(const dvm_ns_file *f)
{
  const ns_region *reg = ns_region_at(f->mount);
  const ns_map *r = reg ? __atomic_load_n(&reg->map, __ATOMIC_ACQUIRE) : NULL;
  return r && r->gen == f->region_gen && f->ino < r->inode_count ? r : NULL;
}

int dvm_ns_unchanged(const dvm_ns_file *f)
{
  const ns_map *r = map_of(f);
  if (!r) return 0;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return load_seq(r->inodes + (size_t)f->ino * DAXVM_NS_INODE_BYTES) == f->seq;
}

int dvm_ns_runs(const dvm_ns_file *f, uint64_t first, uint64_t end, dvm_ns_run *runs, unsigned max, unsigned *n,
                uint64_t *holes)
{
  const ns_map *r = map_of(f);
  if (!r) return -EAGAIN;
  rec_t rec;
  int rc = read_rec(r, f->ino, &rec);
  if (rc) return rc;
  if (rec.seq != f->seq) return -EAGAIN;
  if (!(rec.flags & DAXVM_NS_INODE_EXTENTS)) return DVM_NS_NO_EXTENTS;
  if ((uint64_t)rec.extents + (uint64_t)rec.extent_count > r->heap_granules) return DVM_NS_NO_EXTENTS;
  const unsigned char *ext = r->heap + (size_t)rec.extents * DAXVM_NS_GRANULE;
  /* The first extent that ends after `first` (extents are in file order). */
  uint32_t lo = 0, hi = rec.extent_count;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    const unsigned char *e = ext + (size_t)mid * DAXVM_NS_EXTENT_BYTES;
    if ((uint64_t)u32(e + DAXVM_NS_EXTENT_LOGICAL_OFF) + u32(e + DAXVM_NS_EXTENT_COUNT_OFF) <= first) lo = mid + 1;
    else hi = mid;
  }
  unsigned k = 0;
  uint64_t mapped = 0;
  for (uint32_t x = lo; x < rec.extent_count; x++) {
    const unsigned char *e = ext + (size_t)x * DAXVM_NS_EXTENT_BYTES;
    uint64_t logical = u32(e + DAXVM_NS_EXTENT_LOGICAL_OFF), count = u32(e + DAXVM_NS_EXTENT_COUNT_OFF);
    uint64_t physical = u64(e + DAXVM_NS_EXTENT_PHYSICAL_OFF);
    if (logical >= end) break;
    uint64_t from = logical > first ? logical : first, to = logical + count < end ? logical + count : end;
    if (to <= from) continue;
    uint64_t phys = physical + (from - logical);
    if (k > 0 && runs[k - 1].logical + runs[k - 1].count == from && runs[k - 1].physical + runs[k - 1].count == phys) {
      runs[k - 1].count += to - from;
    } else {
      if (k == max) return DVM_NS_NO_EXTENTS;
      runs[k++] = (dvm_ns_run){.logical = from, .physical = phys, .count = to - from};
    }
    mapped += to - from;
  }
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
  if (load_seq(r->inodes + (size_t)f->ino * DAXVM_NS_INODE_BYTES) != f->seq) return -EAGAIN;
  *n = k;
  *holes = end - first - mapped;
  return 0;
}

const char *dvm_ns_reason(int code)
{
  switch (code) {
  case DVM_NS_NOT_DAXVM: return "not on a daxvm mount";
  case DVM_NS_NO_REGION: return "the daemon publishes no namespace this process may use";
  case DVM_NS_DEAD: return "the daemon stopped publishing its namespace";
  case DVM_NS_SYMLINK: return "a symbolic link on the path";
  case DVM_NS_UNKNOWN: return "a name or inode of the path is not published yet";
  case DVM_NS_BUSY: return "the namespace kept changing while being read";
  case DVM_NS_DOTDOT: return "'..' outside the mount or above its root";
  case DVM_NS_CONTROL: return "the mount's .daxvm control directory";
  case DVM_NS_NOT_ALLOWED: return "the mount is not allow_other and this process is not its owner";
  case DVM_NS_SUBMOUNT: return "another file system is mounted on the path";
  case DVM_NS_SPECIAL: return "not a regular file";
  case DVM_NS_NO_EXTENTS: return "the file's extents are not published (too many)";
  case DVM_NS_TOO_LONG: return "the path is too long";
  case DVM_NS_ABOVE: return "the directories above the mount point could not be checked";
  default: return code < 0 ? strerror(-code) : "unknown";
  }
}
