/*
 * The shared namespace as Node sees it (native-shim/core/ns.h): parse, call,
 * return numbers. Results go into a Float64Array the caller keeps, so a
 * resolve allocates nothing on the JS heap.
 */
#define _GNU_SOURCE /* O_PATH */
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/ns.h"
#include "glue.h"

#define MAX_RUNS 1024

static bool get_f64s(napi_env env, napi_value v, double **data, size_t *len)
{
  napi_typedarray_type type;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_float64_array) {
    type_error(env, "expected a Float64Array");
    return false;
  }
  *data = p;
  return true;
}

static napi_value num(napi_env env, double v)
{
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

/* nsResolve(path: Buffer, want, out: Float64Array(10)) -> 0 | -errno | fallback code;
 * out = [mount, ino, generation, seq, mode, uid, gid, flags, size, region generation] */
static napi_value js_resolve(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  void *path;
  size_t len;
  if (napi_get_buffer_info(env, argv[0], &path, &len) != napi_ok) return type_error(env, "path: expected a Buffer");
  uint64_t want;
  if (!get_u64(env, argv[1], "want", &want)) return NULL;
  double *out;
  size_t n;
  if (!get_f64s(env, argv[2], &out, &n)) return NULL;
  if (n < 10) return type_error(env, "out: 10 numbers");
  dvm_ns_file f;
  int rc = dvm_ns_resolve(path, len, (int)want, &f);
  if (rc == 0) {
    out[0] = f.mount; out[1] = f.ino; out[2] = f.generation; out[3] = f.seq; out[4] = f.mode;
    out[5] = f.uid; out[6] = f.gid; out[7] = f.flags; out[8] = (double)f.size; out[9] = f.region_gen;
  }
  return num(env, rc);
}

static bool get_file(napi_env env, napi_value *argv, dvm_ns_file *f)
{
  uint64_t mount, gen, ino, seq;
  if (!get_u64(env, argv[0], "mount", &mount) || !get_u64(env, argv[1], "gen", &gen) || !get_u64(env, argv[2], "ino", &ino) ||
      !get_u64(env, argv[3], "seq", &seq))
    return false;
  memset(f, 0, sizeof *f);
  f->mount = (int)mount;
  f->region_gen = (uint32_t)gen;
  f->ino = (uint32_t)ino;
  f->seq = (uint32_t)seq;
  return true;
}

/* nsRuns(mount, regionGen, ino, seq, first, end, out) -> 0 | -EAGAIN | fallback code;
 * out = [runs, holes, (logical, physical, count)...] in blocks */
static napi_value js_runs(napi_env env, napi_callback_info info)
{
  napi_value argv[7];
  if (!get_args(env, info, 7, argv)) return NULL;
  dvm_ns_file f;
  uint64_t first, end;
  double *out;
  size_t n;
  if (!get_file(env, argv, &f) || !get_u64(env, argv[4], "first", &first) || !get_u64(env, argv[5], "end", &end)) return NULL;
  if (!get_f64s(env, argv[6], &out, &n)) return NULL;
  if (n < 5) return type_error(env, "out: too short");
  unsigned max = (unsigned)((n - 2) / 3);
  if (max > MAX_RUNS) max = MAX_RUNS;
  dvm_ns_run runs[MAX_RUNS];
  unsigned count = 0;
  uint64_t holes = 0;
  int rc = dvm_ns_runs(&f, first, end, runs, max, &count, &holes);
  if (rc == 0) {
    out[0] = count;
    out[1] = (double)holes;
    for (unsigned i = 0; i < count; i++) {
      out[2 + 3 * i] = (double)runs[i].logical;
      out[3 + 3 * i] = (double)runs[i].physical;
      out[4 + 3 * i] = (double)runs[i].count;
    }
  }
  return num(env, rc);
}

/* nsUnchanged(mount, regionGen, ino, seq) -> boolean */
static napi_value js_unchanged(napi_env env, napi_callback_info info)
{
  napi_value argv[4], out;
  if (!get_args(env, info, 4, argv)) return NULL;
  dvm_ns_file f;
  if (!get_file(env, argv, &f)) return NULL;
  napi_get_boolean(env, dvm_ns_unchanged(&f) != 0, &out);
  return out;
}

/* nsMountInfo(mount) -> { mountpoint, pool, mountId } | null */
static napi_value js_mount_info(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  uint64_t mount, id;
  if (!get_u64(env, argv[0], "mount", &mount)) return NULL;
  const char *mp, *pool;
  if (dvm_ns_mount_info((int)mount, &mp, &pool, &id) != 0) {
    napi_get_null(env, &out);
    return out;
  }
  CHECK(napi_create_object(env, &out));
  if (!set_str(env, out, "mountpoint", mp) || !set_str(env, out, "pool", pool) || !set_num(env, out, "mountId", (double)id)) return NULL;
  return out;
}

/* nsReason(code) -> string */
static napi_value js_reason(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  if (!get_args(env, info, 1, argv)) return NULL;
  int32_t code;
  if (napi_get_value_int32(env, argv[0], &code) != napi_ok) return type_error(env, "code: expected a number");
  CHECK(napi_create_string_utf8(env, dvm_ns_reason(code), NAPI_AUTO_LENGTH, &out));
  return out;
}

/*
 * pinInode(path, ino) -> fd | -1: an O_PATH descriptor of the file the path
 * names, if it is inode ino. A writable pool mapping keeps it, so that
 * msync and unmap move the mtime of the mapped file even after it was
 * renamed (no OPEN request: an O_PATH open does not reach the file system).
 */
static napi_value js_pin_inode(napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return NULL;
  double ino;
  if (napi_get_value_double(env, argv[1], &ino) != napi_ok) return type_error(env, "ino: expected a number");
  char *path = get_string(env, argv[0], "path");
  if (!path) return NULL;
  int fd = open(path, O_PATH | O_CLOEXEC);
  free(path);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || (double)st.st_ino != ino)) {
    close(fd);
    fd = -1;
  }
  return num(env, fd);
}

/*
 * unpin(fd): closes a descriptor pinInode gave. Here, not by fs.closeSync:
 * in a worker thread Node tracks the descriptors its fs opened, and closing
 * one it did not open printed a warning per unmap.
 */
static napi_value js_unpin(napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  int fd;
  if (!get_args(env, info, 1, argv) || !get_fd(env, argv[0], &fd)) return NULL;
  close(fd);
  return NULL;
}

/*
 * touchMtime(path, ino, pin) -> boolean: utimensat with atime UTIME_OMIT,
 * mtime UTIME_NOW (one SETATTR on a FUSE mount). Through the pinned
 * descriptor when there is one (/proc/self/fd/N reaches the inode wherever
 * it was renamed; the kernel checks the caller may set the time, as for any
 * utimensat), else (or when that fails) by path if the path still names
 * inode ino (never another file's mtime).
 */
static napi_value js_touch_mtime(napi_env env, napi_callback_info info)
{
  napi_value argv[3], out;
  if (!get_args(env, info, 3, argv)) return NULL;
  double ino;
  int32_t pin;
  if (napi_get_value_double(env, argv[1], &ino) != napi_ok) return type_error(env, "ino: expected a number");
  if (napi_get_value_int32(env, argv[2], &pin) != napi_ok) return type_error(env, "pin: expected a number");
  const struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_NOW}};
  if (pin >= 0) {
    char proc[32];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", pin);
    /* Else by path: no /proc, or the pinned mount's daemon died and the pool was mounted again there. */
    if (utimensat(AT_FDCWD, proc, ts, 0) == 0) {
      napi_get_boolean(env, true, &out);
      return out;
    }
  }
  char *path = get_string(env, argv[0], "path");
  if (!path) return NULL;
  struct stat st;
  int rc = stat(path, &st) == 0 && (double)st.st_ino == ino ? utimensat(AT_FDCWD, path, ts, 0) : -1;
  free(path);
  napi_get_boolean(env, rc == 0, &out);
  return out;
}

napi_status ns_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"nsResolve", NULL, js_resolve, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nsRuns", NULL, js_runs, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nsUnchanged", NULL, js_unchanged, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nsMountInfo", NULL, js_mount_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nsReason", NULL, js_reason, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pinInode", NULL, js_pin_inode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unpin", NULL, js_unpin, NULL, NULL, NULL, napi_enumerable, NULL},
      {"touchMtime", NULL, js_touch_mtime, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
