/*
 * What the two Node-API glue files (shim.c: file maps and views; lib.c: the
 * client library's pool views, stitched spans, dirty tracking) share: the
 * mapping object behind every handle, and argument and error helpers.
 */
#ifndef DAXVM_GLUE_H
#define DAXVM_GLUE_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

struct dvm_pool;
typedef struct view_entry view_entry;

/* What a handle's memory is, and so how it is given back. */
enum mapping_kind {
  KIND_FILE, /* map(): mmap of a whole file, munmap */
  KIND_SPAN, /* stitch(): a reservation of our own with pool runs mapped in, munmap */
  KIND_HEAP, /* stitch(ephemeral): slots of the ephemeral heap, given back to it */
  KIND_POOL, /* poolView(): the process's view of a pool, never unmapped */
};

typedef struct mapping {
  unsigned char *addr; /* NULL once unmapped */
  uint64_t length;
  unsigned refs;       /* the handle + one per live view (atomic) */
  view_entry *views;   /* views not yet finalized (not kept for KIND_POOL) */
  enum mapping_kind kind;
  bool tracked;        /* registered with the process's userfaultfd, armed */
  uint64_t reserved;   /* address space held: >= length (heap slots, alignment) */
  int lease_fd;        /* a zombie's file handle, closed when it is dropped; -1 */
  struct dvm_pool *pool; /* KIND_POOL: the pool this is a view of */
  struct mapping *zombie_next;
} mapping;

napi_value throw_last(napi_env env, const char *what);
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *code);
napi_value type_error(napi_env env, const char *msg);
bool get_args(napi_env env, napi_callback_info info, size_t argc, napi_value *argv);
bool get_u64(napi_env env, napi_value v, const char *name, uint64_t *out);
bool get_fd(napi_env env, napi_value v, int *out);
bool get_bool(napi_env env, napi_value v, const char *name, bool *out);
mapping *get_mapping(napi_env env, napi_value v);
mapping *get_live(napi_env env, napi_value v);
bool check_range(napi_env env, mapping *m, uint64_t off, uint64_t len);
/* A new handle (External, type-tagged) owning one reference to m. */
napi_value new_handle(napi_env env, mapping *m);
/* Drop one reference; the last gives the memory back (see give_back). */
void release(mapping *m);
/* Give back a mapping's memory by its kind (munmap, heap slots); addr is NULL after. */
int give_back(mapping *m);
/* Detach every live view of m (its ArrayBuffers read as length 0 after). */
napi_value detach_views(napi_env env, mapping *m);

/* Registers lib.c's functions on exports. */
napi_status lib_init(napi_env env, napi_value exports);
/* Registers bench.c's functions (daxvm bench) on exports. */
napi_status bench_init(napi_env env, napi_value exports);
/* Registers fallocate.c's function on exports. */
napi_status fallocate_init(napi_env env, napi_value exports);

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) return throw_last(env, #call);                  \
  } while (0)

#endif
