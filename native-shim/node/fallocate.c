/*
 * fallocate(fd, mode, offset, length) for JavaScript: Node has no
 * fallocate, and daxvm bench append preallocates its files with it (a
 * MAP_DAXVM mapping needs a block behind every page). Any mode, as
 * <linux/falloc.h>; a failure throws the system's errno (EOPNOTSUPP,
 * ENOSPC, EFBIG, EINVAL...), shaped like Node's own errors.
 */
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>

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

napi_status fallocate_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"fallocate", NULL, js_fallocate, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
