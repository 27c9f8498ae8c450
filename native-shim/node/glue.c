/*
 * Node-API helpers shared by the glue files: argument checking, errors, and
 * the lifetime of span handles and the ArrayBuffers handed out over them.
 *
 * Lifetime rules (why this file keeps a list of views):
 * - new_handle() returns an External (type-tagged) owning one reference to a
 *   span (native-shim/core/span.h).
 * - new_view() returns an ArrayBuffer over part of it, no copy, made quiet
 *   (quiet.cc): V8 does not count it as external memory, so large or many
 *   mappings ask for no collection. Each view holds a reference to the span,
 *   given back by its guard's deleter when V8 frees the buffer (from V8's
 *   sweeper thread: the span's count is atomic and giving it back waits for
 *   nothing on the JS thread), so a span whose handle was collected stays
 *   mapped while any view is alive. Views are also kept in a list
 *   (span->face) with a weak reference each; only the JS thread touches the
 *   list (new_view, detach_views, the handle's finalizer).
 * - detach_views() (at unmap) detaches every live view: a stale Buffer then
 *   has length 0 instead of reading freed memory. The list is emptied there
 *   (no view can be made after unmap) or when the handle is collected.
 * - A pool view (DVM_SPAN_POOL) outlives every ArrayBuffer over it: its views
 *   are not tracked and hold no reference.
 */
#include "glue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/sys.h"

typedef struct view_entry {
  napi_ref ref; /* weak, to find the ArrayBuffer again at unmap */
  struct view_entry *next;
} view_entry;

/* Tells our Externals apart from any other addon's. */
static const napi_type_tag SPAN_TAG = {0x6461787666736d61ULL, 0x7070696e67763031ULL};

/* A Node-API call itself failed: surface whatever it left pending. */
napi_value throw_last(napi_env env, const char *what)
{
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    const napi_extended_error_info *info = NULL;
    napi_get_last_error_info(env, &info);
    char msg[256];
    snprintf(msg, sizeof msg, "daxvm_shim: %s failed: %s", what,
             info && info->error_message ? info->error_message : "unknown");
    napi_throw_error(env, "ERR_DAXVM_SHIM", msg);
  }
  return NULL;
}

/* A failed system call, shaped like Node's own: code, errno (<0), syscall. */
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *code)
{
  char scratch[16], msg[256];
  if (!code) code = dvm_errno_name(err, scratch, sizeof scratch);
  snprintf(msg, sizeof msg, "%s: %s, %s", code, strerror(err), syscall);
  napi_value jcode, jmsg, error, jsys, jerrno;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg) != napi_ok ||
      napi_create_error(env, jcode, jmsg, &error) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsys) != napi_ok ||
      napi_create_int32(env, -err, &jerrno) != napi_ok ||
      napi_set_named_property(env, error, "syscall", jsys) != napi_ok ||
      napi_set_named_property(env, error, "errno", jerrno) != napi_ok)
    return throw_last(env, "creating an error");
  napi_throw(env, error);
  return NULL;
}

napi_value type_error(napi_env env, const char *msg)
{
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

/* Reads exactly argc arguments. */
bool get_args(napi_env env, napi_callback_info info, size_t argc, napi_value *argv)
{
  size_t got = argc;
  if (napi_get_cb_info(env, info, &got, argv, NULL, NULL) != napi_ok) {
    throw_last(env, "napi_get_cb_info");
    return false;
  }
  if (got < argc) {
    type_error(env, "daxvm_shim: missing arguments");
    return false;
  }
  return true;
}

/* A non-negative integer number up to 2^53 (offsets and lengths). */
bool get_u64(napi_env env, napi_value v, const char *name, uint64_t *out)
{
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 9007199254740992.0 ||
      d != (double)(uint64_t)d) {
    char msg[128];
    snprintf(msg, sizeof msg, "daxvm_shim: %s must be a non-negative integer", name);
    type_error(env, msg);
    return false;
  }
  *out = (uint64_t)d;
  return true;
}

bool get_fd(napi_env env, napi_value v, int *out)
{
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 2147483647.0 ||
      d != (double)(int)d) {
    type_error(env, "daxvm_shim: fd must be a file descriptor");
    return false;
  }
  *out = (int)d;
  return true;
}

bool get_bool(napi_env env, napi_value v, const char *name, bool *out)
{
  if (napi_get_value_bool(env, v, out) == napi_ok) return true;
  char msg[128];
  snprintf(msg, sizeof msg, "daxvm_shim: %s must be a boolean", name);
  type_error(env, msg);
  return false;
}

int get_choice(napi_env env, napi_value v, const char *what, const char *const *names, int count)
{
  char buf[32];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) == napi_ok)
    for (int i = 0; i < count; i++)
      if (strcmp(buf, names[i]) == 0) return i;
  char msg[128];
  snprintf(msg, sizeof msg, "daxvm_shim: unknown %s", what);
  type_error(env, msg);
  return -1;
}

char *get_string(napi_env env, napi_value v, const char *what)
{
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    char msg[128];
    snprintf(msg, sizeof msg, "daxvm_shim: %s must be a string", what);
    type_error(env, msg);
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

napi_value set_num(napi_env env, napi_value obj, const char *key, double v)
{
  napi_value n;
  CHECK(napi_create_double(env, v, &n));
  CHECK(napi_set_named_property(env, obj, key, n));
  return obj;
}

napi_value set_bool(napi_env env, napi_value obj, const char *key, bool v)
{
  napi_value b;
  CHECK(napi_get_boolean(env, v, &b));
  CHECK(napi_set_named_property(env, obj, key, b));
  return obj;
}

napi_value set_str(napi_env env, napi_value obj, const char *key, const char *v)
{
  napi_value s;
  if (v) CHECK(napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &s));
  else CHECK(napi_get_null(env, &s));
  CHECK(napi_set_named_property(env, obj, key, s));
  return obj;
}

dvm_span *get_span(napi_env env, napi_value v)
{
  bool ok = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, &SPAN_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    napi_value pending;
    napi_get_and_clear_last_exception(env, &pending);
    type_error(env, "daxvm_shim: not a mapping handle");
    return NULL;
  }
  return data;
}

dvm_span *get_live(napi_env env, napi_value v)
{
  dvm_span *s = get_span(env, v);
  if (s && !s->addr) {
    napi_throw_error(env, "ERR_DAXVM_UNMAPPED", "daxvm_shim: the mapping was unmapped");
    return NULL;
  }
  return s;
}

bool check_range(napi_env env, dvm_span *s, uint64_t off, uint64_t len)
{
  if (off <= s->length && len <= s->length - off) return true;
  char msg[160];
  snprintf(msg, sizeof msg,
           "daxvm_shim: range offset %llu length %llu outside a mapping of %llu bytes",
           (unsigned long long)off, (unsigned long long)len, (unsigned long long)s->length);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return false;
}

/* Empties the span's view list (JS thread only). */
static void forget_views(napi_env env, dvm_span *s)
{
  view_entry *e = s->face;
  s->face = NULL;
  while (e) {
    view_entry *next = e->next;
    napi_delete_reference(env, e->ref);
    free(e);
    e = next;
  }
}

static void handle_finalize(napi_env env, void *data, void *hint)
{
  (void)hint;
  forget_views(env, data);
  dvm_span_release(data);
}

napi_value new_handle(napi_env env, dvm_span *s)
{
  napi_value handle;
  if (napi_create_external(env, s, handle_finalize, NULL, &handle) != napi_ok) {
    dvm_span_release(s);
    return throw_last(env, "napi_create_external");
  }
  CHECK(napi_type_tag_object(env, handle, &SPAN_TAG));
  return handle;
}

/* A view's guard (quiet.cc) gives its reference back, from whichever thread V8 frees the buffer on. */
static void release_view(void *data, size_t length, void *span)
{
  (void)data, (void)length;
  dvm_span_release(span);
}

napi_value new_view(napi_env env, dvm_span *s, uint64_t off, uint64_t len)
{
  napi_value ab;
  if (s->kind == DVM_SPAN_POOL) { /* the view outlives the buffer: nothing to count, nothing to give back */
    ab = dvm_quiet_arraybuffer(env, s->addr + off, (size_t)len);
    return ab ? ab : throw_last(env, "creating an ArrayBuffer");
  }
  view_entry *e = calloc(1, sizeof *e);
  if (!e) return throw_errno(env, ENOMEM, "view", NULL);
  dvm_span_ref(s); /* the view's guard's, from here */
  ab = dvm_guarded_arraybuffer(env, s->addr + off, (size_t)len, release_view, s);
  if (!ab) {
    free(e);
    dvm_span_release(s);
    return throw_last(env, "creating an ArrayBuffer");
  }
  if (napi_create_reference(env, ab, 0, &e->ref) != napi_ok) {
    free(e);
    return throw_last(env, "napi_create_reference"); /* the buffer is garbage: its guard gives the reference back */
  }
  e->next = s->face;
  s->face = e;
  return ab;
}

napi_value detach_views(napi_env env, dvm_span *s)
{
  napi_value ok;
  for (view_entry *e = s->face; e; e = e->next) {
    napi_value ab = NULL;
    CHECK(napi_get_reference_value(env, e->ref, &ab));
    if (ab) CHECK(napi_detach_arraybuffer(env, ab));
  }
  forget_views(env, s);
  CHECK(napi_get_boolean(env, true, &ok));
  return ok;
}
