/*
 * The host's part of a path, before the daxvm mount: what the kernel checks
 * there (search permission down to the mount point) and what it follows
 * (symbolic links, '..'), for the namespace walk (ns.c), with the caller's
 * own system calls on the host (no request to any daemon).
 */
#define _GNU_SOURCE
#include "ns_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

/*
 * Search permission on the host's directories above the mount point, which
 * the kernel checks on its way to the mount and the namespace does not hold:
 * faccessat(X_OK) of the mount point's parent checks every directory down to
 * it with the caller's fsuid, fsgid and groups, on the host (no request to
 * any daemon). A relative path is checked from the cwd only, as the kernel
 * walks it; a cwd inside the mount needs no check. 0, -EACCES, or
 * DVM_NS_ABOVE. For absolute paths the answer is kept for a clock tick per
 * thread and mount, as the credentials are (ns_perm.c).
 */
static __thread const ns_mount *above_mnt;
static __thread uint64_t above_tick;
static __thread int above_rc;

int ns_check_above(const ns_mount *mnt, const char *cwd, size_t cwdlen)
{
  if (mnt->len == 0) return 0; /* mounted on "/": nothing above */
  char dir[PATH_MAX + 1];
  const char *mp = mnt->mountpoint;
  if (cwd) {
    if (cwdlen == 1) cwdlen = 0; /* cwd "/" */
    if (mnt->len <= cwdlen) return 0; /* the cwd is the mount point or inside it (the walk reached the mount through it) */
    mp += cwdlen + 1;             /* the mount point relative to the cwd (the walk reached it below the cwd) */
  } else if (above_mnt == mnt && above_tick == ns_tick()) {
    return above_rc;
  }
  const char *slash = strrchr(mp, '/');
  size_t n = slash ? (size_t)(slash - mp) : 0;
  if (slash && n == 0) n = 1; /* "/x": the parent is "/" */
  if (n == 0) { dir[0] = '.'; n = 1; }
  else memcpy(dir, mp, n);
  dir[n] = 0;
  int rc = 0;
  if (faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) != 0) rc = errno == EACCES ? -EACCES : DVM_NS_ABOVE;
  if (!cwd) {
    above_mnt = mnt;
    above_tick = ns_tick();
    above_rc = rc;
  }
  return rc;
}

/*
 * One step of the host's part of a path as the kernel walks it: abs (*alen
 * bytes) becomes a head and abs[from..]. dotdot 1: the head is cur without
 * its last name ('..' of the directory cur, which must be searchable);
 * dotdot 0: cur is a symbolic link, the head its target (from the link's
 * directory when relative). cur (clen bytes, no '.', '..' or link in it)
 * names what the walk consumed. NS_HOST_AGAIN: rewritten; 0: cur is no link;
 * DVM_NS_NOT_DAXVM: the kernel must answer (an error, too many links);
 * DVM_NS_TOO_LONG.
 */
int ns_host_step(char *abs, size_t *alen, size_t from, char *cur, size_t clen, int dotdot, int *links)
{
  char head[PATH_MAX + 1];
  size_t dir = clen; /* cur's directory: cur[0..dir) */
  while (dir > 0 && cur[dir - 1] != '/') dir--;
  if (dir > 0) dir--;
  cur[clen] = 0;
  size_t hlen;
  if (dotdot) {
    if (clen > 0 && faccessat(AT_FDCWD, cur, X_OK, AT_EACCESS) != 0) return DVM_NS_NOT_DAXVM;
    memcpy(head, cur, dir);
    hlen = dir;
  } else {
    char target[PATH_MAX + 1];
    ssize_t n = readlink(clen ? cur : "/", target, PATH_MAX);
    if (n < 0) return errno == EINVAL ? 0 : DVM_NS_NOT_DAXVM;
    if (n == 0 || ++*links > 40) return DVM_NS_NOT_DAXVM;
    hlen = 0;
    if (target[0] != '/') {
      memcpy(head, cur, dir);
      head[dir] = '/';
      hlen = dir + 1;
    }
    if (hlen + (size_t)n > PATH_MAX) return DVM_NS_TOO_LONG;
    memcpy(head + hlen, target, (size_t)n);
    hlen += (size_t)n;
  }
  size_t rest = *alen - from;
  if (hlen + 1 + rest > PATH_MAX) return DVM_NS_TOO_LONG;
  memmove(abs + hlen + 1, abs + from, rest); /* "/" between: repeated slashes are harmless */
  abs[hlen] = '/';
  memcpy(abs, head, hlen);
  *alen = hlen + 1 + rest;
  if (abs[0] != '/') return DVM_NS_NOT_DAXVM;
  return NS_HOST_AGAIN;
}
