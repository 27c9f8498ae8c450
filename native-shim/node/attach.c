/*
 * The attached path in one call (src/lib/map.ts): read the file's table
 * from the pool view (native-shim/core/table.c), and when the range is one
 * contiguous run, lease its blocks, check the table again, and return a
 * Buffer over the pool view (quiet.cc: not counted as external memory, no
 * finalizer). The lease is kept in a record (records.c), and JS holds
 * only its number: unmap (release) detaches the Buffer and
 * drops the lease in one call; a Buffer the program let go without unmap
 * has its lease dropped when V8 frees its ArrayBuffer (quiet.cc's guard,
 * no JS callback). A record's number carries a serial, so a stale number
 * (the guard's, after unmap) drops nothing.
 *
 * The same out array layout for readTable and attach (Float64Array):
 *   [0] seq, [1] size, [2] holes, [3] pte, [4] pmd, [5] pud, [6] runs,
 *   [7] lease id (attach), [8] errno of a lease failure,
 *   [9 + 2i ...] run i: first pool block, blocks.
 * Table problems are returned negated (-dvm_table_problem); -EPROTO's
 * TABLE_NOT_A_POOL when the view's superblock is not a daxvm pool's.
 */
#include <errno.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include "../core/lease.h"
#include "../core/process.h"
#include "../core/table.h"
#include "glue.h"

enum { OUT_SEQ, OUT_SIZE, OUT_HOLES, OUT_PTE, OUT_PMD, OUT_PUD, OUT_RUNS, OUT_LEASE, OUT_ERRNO, OUT_HEAD };

/* What attach returns instead of a Buffer (table problems are table.h's, negated). */
enum {
  TABLE_NOT_A_POOL = -99,
  ATTACH_SPLIT = 1,        /* not one run: the general path (readTable, lease, stitch) */
  ATTACH_HOLES = 2,        /* holes in the range: out[2] says how many blocks */
  ATTACH_NO_LEASE = -100,  /* the lease could not be taken: out[8] says why */
  ATTACH_CHANGING = -101,  /* the table kept changing while being leased */
};

#define LEASE_TRIES 8

/* A leased buffer's guard (quiet.cc): drops lease record arg, from any thread (a stale id, after unmap, drops nothing). */
static void drop_record(void *data, size_t length, void *id)
{
  (void)data, (void)length;
  dvm_record_drop((double)(uintptr_t)id);
}

/* A shared guard passes on from a buffer whose record was dropped (unmapped: release forgot the guard first). */
static bool record_done(void *id)
{
  return !dvm_record_live((double)(uintptr_t)id);
}

static dvm_span *pool_handle(napi_env env, napi_value v)
{
  dvm_span *s = get_live(env, v);
  if (s && s->kind != DVM_SPAN_POOL) {
    type_error(env, "daxvm_shim: a pool view handle is needed");
    return NULL;
  }
  return s;
}

static bool get_out(napi_env env, napi_value v, double **out, size_t *len)
{
  bool is_ta = false;
  napi_typedarray_type tt;
  void *data = NULL;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &tt, len, &data, NULL, NULL) != napi_ok ||
      tt != napi_float64_array || *len < OUT_HEAD + 2) {
    type_error(env, "daxvm_shim: out must be a Float64Array of at least 11 numbers");
    return false;
  }
  *out = data;
  return true;
}

static void put_table(double *out, const dvm_table_result *t, const dvm_run *runs, unsigned stored)
{
  out[OUT_SEQ] = t->seq;
  out[OUT_SIZE] = (double)t->size;
  out[OUT_HOLES] = (double)t->holes;
  out[OUT_PTE] = (double)t->leaves.pte;
  out[OUT_PMD] = (double)t->leaves.pmd;
  out[OUT_PUD] = (double)t->leaves.pud;
  out[OUT_RUNS] = t->runs;
  for (unsigned i = 0; i < stored; i++) {
    out[OUT_HEAD + 2 * i] = (double)(runs[i].offset / 4096);
    out[OUT_HEAD + 2 * i + 1] = (double)(runs[i].length / 4096);
  }
}

static napi_value number(napi_env env, double v)
{
  napi_value out;
  CHECK(napi_create_double(env, v, &out));
  return out;
}

/* Common arguments: (roHandle, ino, gen, first, end) at argv[0..4]. */
typedef struct {
  dvm_span *ro;
  uint64_t ino, gen, first, end;
  dvm_pool_info info;
} table_args;

static bool get_table_args(napi_env env, napi_value *argv, table_args *a)
{
  if (!(a->ro = pool_handle(env, argv[0])) || !get_u64(env, argv[1], "ino", &a->ino) ||
      !get_u64(env, argv[2], "gen", &a->gen) || !get_u64(env, argv[3], "first", &a->first) ||
      !get_u64(env, argv[4], "end", &a->end))
    return false;
  if (a->end <= a->first || a->ino > UINT32_MAX || a->gen > UINT32_MAX) {
    type_error(env, "daxvm_shim: an empty range, or ino or gen out of range");
    return false;
  }
  return true;
}

/*
 * readTable(roHandle, ino, gen, first, end, out) -> how many runs there are
 * (those that fit are in out: ask again with room for them all), or a
 * problem (< 0: -dvm_table_problem, TABLE_NOT_A_POOL)
 */
static napi_value js_read_table(napi_env env, napi_callback_info info)
{
  napi_value argv[6];
  table_args a;
  double *out;
  size_t len;
  if (!get_args(env, info, 6, argv) || !get_table_args(env, argv, &a) || !get_out(env, argv[5], &out, &len))
    return NULL;
  if (dvm_pool_info_read(a.ro->addr, a.ro->length, &a.info) < 0) return number(env, TABLE_NOT_A_POOL);
  unsigned room = (unsigned)((len - OUT_HEAD) / 2);
  dvm_run *runs = malloc(room * sizeof *runs);
  if (!runs) return throw_errno(env, ENOMEM, "malloc", NULL);
  dvm_table_result t;
  dvm_table_problem p = dvm_table_read(a.ro->addr, &a.info, (uint32_t)a.ino, (uint32_t)a.gen, a.first, a.end, runs, room, &t);
  if (p == DVM_TABLE_OK) put_table(out, &t, runs, t.runs < room ? t.runs : room);
  free(runs);
  return number(env, p == DVM_TABLE_OK ? (double)t.runs : -(double)p);
}

/* tableProblem(code) -> what a negative answer of readTable or attach means */
static napi_value js_table_problem(napi_env env, napi_callback_info info)
{
  napi_value argv[1], out;
  double code;
  if (!get_args(env, info, 1, argv) || napi_get_value_double(env, argv[0], &code) != napi_ok)
    return type_error(env, "daxvm_shim: a code is needed");
  const char *text = code == TABLE_NOT_A_POOL ? "not a daxvm pool (its superblock)"
                     : code < 0 && code >= -DVM_TABLE_BUSY ? dvm_table_problem_text((dvm_table_problem)-code)
                                                             : "unknown";
  CHECK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out));
  return out;
}

/*
 * attach(roHandle, ino, gen, first, end, viewHandle, length, out) -> Buffer | number.
 * A Buffer over [run * 4096, +length) of the view when blocks [first, end)
 * are one run, leased and still the file's; else ATTACH_SPLIT, ATTACH_HOLES,
 * ATTACH_NO_LEASE, ATTACH_CHANGING or a table problem (out says more).
 */
static napi_value js_attach(napi_env env, napi_callback_info info)
{
  napi_value argv[8];
  table_args a;
  dvm_span *view;
  uint64_t length;
  double *out;
  size_t len;
  if (!get_args(env, info, 8, argv) || !get_table_args(env, argv, &a) || !(view = pool_handle(env, argv[5])) ||
      !get_u64(env, argv[6], "length", &length) || !get_out(env, argv[7], &out, &len))
    return NULL;
  if (view->pool != a.ro->pool) return type_error(env, "daxvm_shim: the view is of another pool");
  if (dvm_pool_info_read(a.ro->addr, a.ro->length, &a.info) < 0) return number(env, TABLE_NOT_A_POOL);
  dvm_lease_table *leases = NULL;
  for (int attempt = 0; attempt < LEASE_TRIES; attempt++) {
    dvm_table_result t;
    dvm_run run;
    int rc;
    dvm_table_problem p = dvm_table_read(a.ro->addr, &a.info, (uint32_t)a.ino, (uint32_t)a.gen, a.first, a.end, &run, 1, &t);
    if (p != DVM_TABLE_OK) return number(env, -(double)p);
    put_table(out, &t, &run, t.runs < 1 ? t.runs : 1);
    if (t.holes) return number(env, ATTACH_HOLES);
    if (t.runs != 1) return number(env, ATTACH_SPLIT);
    uint64_t base = run.offset;
    if (length > run.length || base + length > view->length) return number(env, -(double)DVM_TABLE_BAD_BLOCK);
    if (!leases && (rc = dvm_pool_leases(a.ro->pool, &leases)) < 0) {
      out[OUT_ERRNO] = -rc;
      return number(env, ATTACH_NO_LEASE);
    }
    dvm_block_run blocks = {run.offset / 4096, run.length / 4096};
    dvm_lease lease;
    rc = dvm_lease_take(leases, &blocks, 1, (uint32_t)a.ino, (uint32_t)a.gen, view->addr != a.ro->addr, &lease);
    if (rc < 0) {
      out[OUT_ERRNO] = -rc;
      return number(env, ATTACH_NO_LEASE);
    }
    /* Leased: are the blocks still the file's (docs/format.md, "Leases: the ordering argument")? */
    if (!dvm_table_unchanged(a.ro->addr, &a.info, (uint32_t)a.ino, t.seq)) {
      dvm_lease_drop(&lease);
      continue;
    }
    double id;
    napi_value buf = dvm_lease_view(env, &lease, view->addr + base, (size_t)length, false, &id);
    if (buf) out[OUT_LEASE] = id;
    return buf;
  }
  return number(env, ATTACH_CHANGING);
}

napi_value dvm_lease_view(napi_env env, dvm_lease *lease, void *data, size_t length, bool array, double *id)
{
  *id = dvm_record_put(lease);
  if (*id < 0) {
    dvm_lease_drop(lease);
    return throw_errno(env, ENOMEM, "malloc", NULL);
  }
  void *arg = (void *)(uintptr_t)*id;
  napi_value buf = array ? dvm_shared_guard_arraybuffer(env, data, length, drop_record, record_done, arg)
                         : dvm_shared_guard_buffer(env, data, length, drop_record, record_done, arg);
  if (!buf) {
    dvm_record_drop(*id);
    return throw_last(env, "creating a Buffer");
  }
  return buf;
}

/*
 * adopt(viewHandle, offset, length, lease, out) -> Buffer over [offset,
 * +length) of the view, as attach makes it, for a lease taken already (the
 * namespace's path, src/lib/direct.ts): the lease moves from its handle
 * (empty after) into a record, out[7] its id.
 */
static napi_value js_adopt(napi_env env, napi_callback_info info)
{
  napi_value argv[5];
  dvm_span *view;
  uint64_t off, length;
  dvm_lease *l;
  double *out;
  size_t len;
  if (!get_args(env, info, 5, argv) || !(view = pool_handle(env, argv[0])) || !get_u64(env, argv[1], "offset", &off) ||
      !get_u64(env, argv[2], "length", &length) || !check_range(env, view, off, length) || !(l = get_lease(env, argv[3])) ||
      !get_out(env, argv[4], &out, &len))
    return NULL;
  if (!l->table) return type_error(env, "daxvm_shim: the lease handle holds no lease");
  double id = dvm_record_put(l);
  if (id < 0) return throw_errno(env, ENOMEM, "malloc", NULL);
  memset(l, 0, sizeof *l); /* the record holds it now */
  napi_value buf = dvm_shared_guard_buffer(env, view->addr + off, (size_t)length, drop_record, record_done, (void *)(uintptr_t)id);
  if (!buf) {
    dvm_record_drop(id);
    return throw_last(env, "creating a Buffer");
  }
  out[OUT_LEASE] = id;
  return buf;
}

/* release(buffer, leaseId): the Buffer is detached (length 0) and the lease dropped; idempotent */
static napi_value js_release(napi_env env, napi_callback_info info)
{
  napi_value argv[2], ab;
  double id;
  bool is_ta = false, detached = false;
  if (!get_args(env, info, 2, argv)) return NULL;
  if (napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[0], NULL, NULL, NULL, &ab, NULL) != napi_ok)
    return type_error(env, "daxvm_shim: release takes a Buffer");
  if (napi_get_value_double(env, argv[1], &id) != napi_ok) return type_error(env, "daxvm_shim: not a lease id");
  CHECK(napi_is_detached_arraybuffer(env, ab, &detached));
  if (!detached) CHECK(napi_detach_arraybuffer(env, ab));
  dvm_guard_forget(env, ab); /* before the drop: a dropped record lets the thread's next buffer take the guard */
  dvm_record_drop(id);
  return NULL;
}

napi_status attach_init(napi_env env, napi_value exports)
{
  const napi_property_descriptor fns[] = {
      {"readTable", NULL, js_read_table, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attach", NULL, js_attach, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tableProblem", NULL, js_table_problem, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adopt", NULL, js_adopt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"release", NULL, js_release, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns);
}
