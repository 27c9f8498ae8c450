/*
 * The host file's blocks, for JavaScript (Node has neither call):
 * - fallocate(fd, mode, offset, length): daxvm bench append preallocates its
 *   files with it (a MAP_DAXVM mapping needs a block behind every page), the
 *   media layer allocates and zeroes pools. Any mode, as <linux/falloc.h>.
 * - unwrittenExtents(fd, offset, length): the host's unwritten extents
 *   (FIEMAP) in a range: allocated, read as zeros, and converted by the host
 *   file system at the first write that reaches them, inside whatever
 *   fdatasync writes that block back (media/host.ts).
 * A failure throws the system's errno (EOPNOTSUPP, ENOSPC, EFBIG, EINVAL...),
 * shaped like Node's own errors.
 */
#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../core/sys.h"
#include "glue.h"

/* An integer number in off_t's range (negative ones go to the kernel, which answers EINVAL). */
static bool get_off(napi_env env, napi_value v, const char *name, int64_t *out)
{
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d ||
      d < -9223372036854775808.0 || d >= 9223372036854775808.0 || d != (double)(int64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "daxvm_shim: %s must be an integer", name);
    type_error(env, msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}

/* fallocate(fd, mode, offset, length) */
static napi_value js_fallocate(napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  int fd;
  int32_t mode;
  int64_t off, len;
  if (!get_args(env, info, 4, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (napi_get_value_int32(env, argv[1], &mode) != napi_ok)
    return type_error(env, "daxvm_shim: mode must be a number (FALLOC_FL_* bits)");
  if (!get_off(env, argv[2], "offset", &off) || !get_off(env, argv[3], "length", &len)) return NULL;
  int rc = dvm_fallocate(fd, mode, off, len);
  return rc < 0 ? throw_errno(env, -rc, "fallocate", NULL) : NULL;
}

/* Extents asked for per FIEMAP call. */
#define FIEMAP_BATCH 64

/*
 * unwrittenExtents(fd, offset, length): [start, length, start, length...] of
 * the unwritten extents in [offset, offset+length), clipped to it, in order.
 * No FIEMAP_FLAG_SYNC: what is on the host's media is asked, not what dirty
 * pages will make of it (and a sync would write the whole file back).
 */
static napi_value js_unwritten_extents(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  int fd;
  int64_t off, len;
  if (!get_args(env, info, 3, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  if (!get_off(env, argv[1], "offset", &off) || !get_off(env, argv[2], "length", &len)) return NULL;
  if (off < 0 || len < 0) return throw_errno(env, EINVAL, "fiemap", NULL);
  struct {
    struct fiemap head;
    struct fiemap_extent ext[FIEMAP_BATCH];
  } fm;
  napi_value out;
  if (napi_create_array(env, &out) != napi_ok) return NULL;
  uint32_t n = 0;
  uint64_t at = (uint64_t)off, end = (uint64_t)off + (uint64_t)len;
  while (at < end) {
    memset(&fm, 0, sizeof fm);
    fm.head.fm_start = at;
    fm.head.fm_length = end - at;
    fm.head.fm_extent_count = FIEMAP_BATCH;
    int rc;
    do rc = ioctl(fd, FS_IOC_FIEMAP, &fm.head);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) return throw_errno(env, errno == ENOTTY ? EOPNOTSUPP : errno, "fiemap", NULL);
    uint32_t got = fm.head.fm_mapped_extents;
    if (got == 0) break;
    for (uint32_t i = 0; i < got; i++) {
      const struct fiemap_extent *e = &fm.ext[i];
      uint64_t s = e->fe_logical, t = e->fe_logical + e->fe_length;
      if (s < at) s = at;
      if (t > end) t = end;
      if ((e->fe_flags & FIEMAP_EXTENT_UNWRITTEN) && s < t) {
        napi_value a, b;
        if (napi_create_double(env, (double)s, &a) != napi_ok || napi_create_double(env, (double)(t - s), &b) != napi_ok ||
            napi_set_element(env, out, n++, a) != napi_ok || napi_set_element(env, out, n++, b) != napi_ok)
          return NULL;
      }
    }
    const struct fiemap_extent *last = &fm.ext[got - 1];
    if (last->fe_flags & FIEMAP_EXTENT_LAST) break;
    uint64_t next = last->fe_logical + last->fe_length;
    if (next <= at) break;
    at = next;
  }
  return out;
}

napi_status fallocate_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwrittenExtents", NULL, js_unwritten_extents, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
