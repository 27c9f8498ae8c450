/*
 * MAP_DAXVM of a file the shared namespace can serve whole, in one call
 * (src/lib/direct.ts): resolve the path (core/ns.c: lock-free, permissions
 * as default_permissions), read its extents, lease the one run, check the
 * record again (docs/format.md, "Leases: the ordering argument"), and
 * return a quiet ArrayBuffer over the pool view (attach.c's records keep the
 * lease; release() detaches and drops it). One call instead of five, no
 * lease handle (a napi External with a finalizer) and no JS object per
 * mapping besides the Buffer: the library's own cost per mmap+unmap was
 * mostly those (issue 10, "Cheap mapping objects").
 *
 * Anything else (several runs, private, another mount than the caller
 * guessed, holes...) is a number: the caller takes the general path
 * (planDirect, the mount) or throws, as direct.ts says.
 */
#include <errno.h>
#include <limits.h>
#include <node_api.h>
#include <string.h>

#include "../core/lease.h"
#include "../core/ns.h"
#include "../core/process.h"
#include "../core/table.h"
#include "../include/daxvm_format.h"
#include "glue.h"

#define PAGE 4096u
#define TRIES 8

/* Codes besides ns.h's (-errno, a positive fallback below 100): keep in step with direct.ts's NSA. */
enum {
  NSA_OTHER_MOUNT = 100, /* resolved on another mount than the view's: out[0] = its index */
  NSA_NO_TABLES,         /* the file has no page tables */
  NSA_PAST_END,          /* offset at or past the end: out[4] = size */
  NSA_SPLIT,             /* not one run (or too many): the general path */
  NSA_HOLES,             /* holes in the range: out[8] = how many blocks */
  NSA_BAD_BLOCK,         /* a run outside the pool's data area or the view */
  NSA_NO_LEASE,          /* no lease: out[9] = errno */
  NSA_CHANGING,          /* the file kept changing while being leased */
  NSA_TOO_LONG,          /* the length exceeds what a Buffer may hold: out[5] = length */
};

/* io, out: [0] mount, [1] ino, [2] generation, [3] seq, [4] size, [5] length, [6] first file block, [7] pool block,
 * [8] blocks, [9] lease id, [10] 1 when the path was absolute and normal already (what path.resolve would give);
 * in: [11] want, [12] offset, [13] length (0: to the end), [14] mount, [15] max length. Numbers in a Float64Array
 * rather than five arguments: each argument was a napi_get_value_double and its checks, about 90 instructions. */
enum { O_MOUNT, O_INO, O_GEN, O_SEQ, O_SIZE, O_LENGTH, O_FIRST, O_PHYS, O_COUNT, O_LEASE, O_PLAIN,
       I_WANT, I_OFFSET, I_LENGTH, I_MOUNT, I_MAX_LENGTH, IO_N };

/* A non-negative integer a double can hold exactly, as get_u64 takes it. */
static bool in_u64(double d, uint64_t *v)
{
  if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return false;
  *v = (uint64_t)d;
  return true;
}

static napi_value num(napi_env env, double v)
{
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static dvm_span *pool_view(napi_env env, napi_value v)
{
  dvm_span *s = get_live(env, v);
  if (s && s->kind != DVM_SPAN_POOL) {
    type_error(env, "daxvm_shim: a pool view handle is needed");
    return NULL;
  }
  return s;
}

/*
 * nsAttach(path: string | Buffer, roHandle, io): read-only, what to map in io (above)
 * -> ArrayBuffer | number (see the enum above; -errno: the kernel's answer; 1..99: ns.h's fallbacks)
 */
static napi_value js_ns_attach(napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  if (!get_args(env, info, 3, argv)) return NULL;
  char text[PATH_MAX + 2];
  const char *path = text;
  size_t len = 0;
  bool is_buffer = false;
  napi_is_buffer(env, argv[0], &is_buffer);
  if (is_buffer) {
    void *p;
    if (napi_get_buffer_info(env, argv[0], &p, &len) != napi_ok) return type_error(env, "path: expected a Buffer");
    path = p;
  } else if (napi_get_value_string_utf8(env, argv[0], text, sizeof text, &len) != napi_ok) {
    return type_error(env, "path: expected a string or a Buffer");
  } else if (len > PATH_MAX) {
    return num(env, DVM_NS_TOO_LONG);
  }
  uint64_t want, offset, length, mount, max_length;
  dvm_span *ro;
  napi_typedarray_type tt;
  size_t n;
  void *data;
  if (!(ro = pool_view(env, argv[1]))) return NULL;
  if (napi_get_typedarray_info(env, argv[2], &tt, &n, &data, NULL, NULL) != napi_ok || tt != napi_float64_array || n < IO_N)
    return type_error(env, "io: a Float64Array of 16 numbers");
  double *out = data;
  if (!in_u64(out[I_WANT], &want) || !in_u64(out[I_OFFSET], &offset) || !in_u64(out[I_LENGTH], &length) ||
      !in_u64(out[I_MOUNT], &mount) || !in_u64(out[I_MAX_LENGTH], &max_length))
    return type_error(env, "daxvm_shim: io's want, offset, length, mount and maxLength must be non-negative integers");
  dvm_pool_info pi;
  if (dvm_pool_info_read(ro->addr, ro->length, &pi) < 0) return num(env, NSA_BAD_BLOCK);

  for (int attempt = 0; attempt < TRIES; attempt++) {
    dvm_ns_file f;
    int rc = dvm_ns_resolve(path, len, (int)want, &f);
    if (rc != 0) return num(env, rc);
    out[O_MOUNT] = f.mount;
    out[O_SIZE] = (double)f.size;
    if ((uint64_t)f.mount != mount) return num(env, NSA_OTHER_MOUNT);
    if (!(f.flags & DAXVM_NS_INODE_TABLES)) return num(env, NSA_NO_TABLES);
    if (offset >= f.size) return num(env, NSA_PAST_END);
    uint64_t len_map = length ? length : f.size - offset;
    out[O_LENGTH] = (double)len_map;
    if (len_map > max_length) return num(env, NSA_TOO_LONG);
    uint64_t first = offset / PAGE, end = (offset + len_map + PAGE - 1) / PAGE;
    dvm_ns_run runs[2];
    unsigned count = 0;
    uint64_t holes = 0;
    rc = dvm_ns_runs(&f, first, end, runs, 2, &count, &holes);
    if (rc == -EAGAIN) continue;
    if (rc == DVM_NS_NO_EXTENTS && (f.flags & DAXVM_NS_INODE_EXTENTS)) return num(env, NSA_SPLIT); /* more than 2 runs */
    if (rc != 0) return num(env, rc);
    if (holes) {
      out[O_COUNT] = (double)holes;
      return num(env, NSA_HOLES);
    }
    if (count != 1) return num(env, NSA_SPLIT);
    const dvm_ns_run *r = &runs[0];
    uint64_t base = r->physical * PAGE;
    if (r->physical < pi.data_start || r->physical + r->count > pi.total_blocks || base + len_map > ro->length)
      return num(env, NSA_BAD_BLOCK);
    dvm_lease_table *leases;
    if ((rc = dvm_pool_leases(ro->pool, &leases)) < 0) {
      out[O_LEASE] = -rc;
      return num(env, NSA_NO_LEASE);
    }
    dvm_block_run blocks = {r->physical, r->count};
    dvm_lease lease;
    if ((rc = dvm_lease_take(leases, &blocks, 1, f.ino, f.generation, false, &lease)) < 0) {
      out[O_LEASE] = -rc;
      return num(env, NSA_NO_LEASE);
    }
    /* The lease is visible (a full fence): are the blocks still the file's? */
    if (!dvm_ns_unchanged(&f)) {
      dvm_lease_drop(&lease);
      continue;
    }
    double id;
    napi_value buf = dvm_lease_view(env, &lease, ro->addr + base, (size_t)len_map, true, &id);
    if (!buf) return NULL;
    out[O_INO] = f.ino;
    out[O_GEN] = f.generation;
    out[O_SEQ] = f.seq;
    out[O_FIRST] = (double)r->logical;
    out[O_PHYS] = (double)r->physical;
    out[O_COUNT] = (double)r->count;
    out[O_LEASE] = id;
    out[O_PLAIN] = f.plain;
    return buf;
  }
  return num(env, NSA_CHANGING);
}

napi_status ns_attach_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"nsAttach", NULL, js_ns_attach, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
