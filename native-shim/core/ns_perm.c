/*
 * The shared namespace's permission checks, as the kernel makes them under
 * default_permissions (generic_permission) and as FUSE admits callers
 * (allow_other), from the caller's credentials read once per clock tick.
 */
#define _GNU_SOURCE
#include "ns_internal.h"

#include <errno.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The caller's credentials, read once per clock tick and thread (four
 * system calls otherwise on every resolve): a change of credentials is seen
 * within a tick (a few ms). The supplementary groups are read when needed.
 */
static __thread ns_cred cached;
static __thread uint64_t cred_tick;

ns_cred *ns_credentials(void)
{
  uint64_t tick = ns_tick();
  if (cred_tick != tick) {
    cached.fsuid = (uid_t)setfsuid((uid_t)-1);
    cached.fsgid = (gid_t)setfsgid((gid_t)-1);
    if (getresuid(&cached.ruid, &cached.euid, &cached.suid) != 0) cached.ruid = cached.euid = cached.suid = (uid_t)-1;
    if (getresgid(&cached.rgid, &cached.egid, &cached.sgid) != 0) cached.rgid = cached.egid = cached.sgid = (gid_t)-1;
    cached.ngroups = -1;
    cred_tick = tick;
  }
  return &cached;
}

/* 1 in the group, 0 not, -1 cannot tell (too many supplementary groups to keep). */
static int in_group(ns_cred *c, gid_t gid)
{
  if (gid == c->fsgid) return 1;
  if (c->ngroups == -1) {
    c->ngroups = getgroups(GROUPS_CACHED, c->groups);
    if (c->ngroups < 0) c->ngroups = -2;
  }
  if (c->ngroups == -2) return -1;
  for (int i = 0; i < c->ngroups; i++)
    if (c->groups[i] == gid) return 1;
  return 0;
}

/*
 * generic_permission, fsuid 0 holding CAP_DAC_OVERRIDE: mask of 4 read, 2
 * write, 1 search/exec. 1 allowed, 0 EACCES, -1 cannot tell (ask the mount).
 */
static int may(const rec_t *r, int mask, ns_cred *c)
{
  if (c->fsuid == 0) return !(mask & 1) || S_ISDIR(r->mode) || (r->mode & 0111);
  unsigned m = r->mode;
  if (c->fsuid == r->uid) m >>= 6;
  else {
    int g = in_group(c, r->gid);
    if (g < 0) return -1;
    if (g) m >>= 3;
  }
  return ((int)m & mask & 7) == mask;
}

/* may() as a resolve's answer: 0 allowed, -EACCES, or a fallback. */
int ns_check(const rec_t *r, int mask, ns_cred *c)
{
  int ok = may(r, mask, c);
  return ok > 0 ? 0 : ok == 0 ? -EACCES : DVM_NS_UNKNOWN;
}

int ns_allowed(const ns_mount *m, const ns_cred *c)
{
  if (m->allow_other) return 1;
  uid_t u = (uid_t)m->user_id;
  gid_t g = (gid_t)m->group_id;
  return c->ruid == u && c->euid == u && c->suid == u && c->rgid == g && c->egid == g && c->sgid == g;
}
