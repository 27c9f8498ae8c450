/* What ns.c (the walk), ns_perm.c (permissions) and ns_mounts.c (mount table, regions) share. Not an API: see ns.h. */
#ifndef DAXVM_NS_INTERNAL_H
#define DAXVM_NS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../include/daxvm_format.h"
#include "ns.h"

#define NS_MAX_REGIONS 256
#define NS_READY (-1)

/* A region as mapped (never unmapped or changed: a reader that loaded it may go on using it). */
typedef struct {
  uint32_t gen; /* the header's region_gen */
  uint64_t size, map_len;
  uint32_t pid, inode_count, bucket_mask, name_count, heap_granules;
  const unsigned char *base, *inodes, *names, *heap;
  const uint32_t *buckets, *live;
} ns_map;

/* One daxvm mount's namespace (never freed: indexes stay valid). */
typedef struct {
  int index;
  uint64_t mount_id;
  char *mountpoint, *pool;
  int state;           /* atomic: 0 not opened, NS_READY, or a fallback code (retried after retry_at) */
  double retry_at;
  uint64_t alive_tick; /* atomic: the tick the daemon was last seen running */
  ns_map *map;         /* atomic: the region in use; replaced when it goes dead (a new daemon, a reused mount id) */
} ns_region;

typedef struct {
  uint64_t id, parent;
  const char *mountpoint;
  size_t len; /* 0 for "/" */
  ns_region *region; /* daxvm mounts (of their file system's root) only */
  int read_only, allow_other;
  unsigned children; /* mounts whose parent it is */
  long user_id, group_id;
} ns_mount;

typedef struct {
  char *text;
  uint64_t root;
  unsigned n;
  ns_mount m[];
} ns_snap;

/* A coarse clock tick (CLOCK_MONOTONIC_COARSE, a few ms; no system call): what is checked by a system call is checked again once per tick. */
uint64_t ns_tick(void);
const ns_snap *ns_snapshot(void);
const ns_mount *ns_mount_at(const ns_snap *s, uint64_t *in, const char *path, size_t len);
ns_region *ns_region_at(int index);
/* The region's map, usable now (*map set, 0), or why not (a fallback code). */
int ns_region_ready(ns_region *r, const ns_map **map);

/* An inode record as read (a consistent copy). */
typedef struct {
  uint32_t seq, generation, mode, uid, gid, nlink, parent, flags, extents, extent_count;
  uint64_t size;
} rec_t;

#define GROUPS_CACHED 256

/* The caller's credentials. */
typedef struct {
  uid_t fsuid, ruid, euid, suid;
  gid_t fsgid, rgid, egid, sgid;
  int ngroups; /* -1: not read yet; -2: more than GROUPS_CACHED */
  gid_t groups[GROUPS_CACHED];
} ns_cred;

/* This thread's credentials, read once per clock tick (a change is seen within a tick). */
ns_cred *ns_credentials(void);
/* Access by mask (4 read, 2 write, 1 search/exec) as generic_permission: 0, -EACCES, or a fallback code. */
int ns_check(const rec_t *r, int mask, ns_cred *c);
/* FUSE lets only the mount's owner in unless allow_other (fuse_allow_current_process). */
int ns_allowed(const ns_mount *m, const ns_cred *c);
/* ns_host.c: search permission on the host's directories above the mount point (a relative path: from cwd, cwdlen bytes of it). 0, -EACCES or DVM_NS_ABOVE. */
int ns_check_above(const ns_mount *mnt, const char *cwd, size_t cwdlen);
/* The host's part of a path as the kernel walks it: a symbolic link or '..' at cur (ns_host.c). */
#define NS_HOST_AGAIN (-1) /* ns_host_step rewrote the path: walk it again */
int ns_host_step(char *abs, size_t *alen, size_t from, char *cur, size_t clen, int dotdot, int *links);

#endif
