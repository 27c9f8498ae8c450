/*
 * daxvm_fuse's session: mount with libfuse3, then serve requests on the JS
 * thread. A uv_poll watches the session's /dev/fuse fd (O_NONBLOCK); when it
 * is readable we receive and process requests, each answered synchronously by
 * JS before the next is read (the file system is synchronous), until EAGAIN or
 * a bounded batch, so timers and signals still get their turn. No thread hop:
 * the kernel's reader is this thread. ENODEV (the mount is gone: unmounted,
 * or a lazy unmount's last user left, or the connection was aborted) ends the
 * session and calls JS's end(reason).
 *
 * JS API (src/fuse/lowlevel.ts):
 *   mount(mountpoint, options, handlers, { negTimeout, maxWrite, noOpen }) -> session
 *   buffers(session) -> { num: Float64Array, data: Buffer, recv: Buffer, counts: Float64Array }
 *   dirAdd(session, name, nextOffset) -> bool       (inside readdir only)
 *   invalInode(session, ino) -> 0 | -errno           (attributes only: no page locks)
 *   close(session, unmount = true)                    (stop, unmount unless told not to, destroy)
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/fuse.h>

#include "fuse_glue.h"

#define RECV_SIZE (256 * 4096 + 4096) /* FUSE_MAX_MAX_PAGES pages + FUSE_BUFFER_HEADER_SIZE */
#define DATA_SIZE (256 * 4096 + 65536) /* the largest READ, and the largest xattr value */
#define BATCH 64

typedef struct shared { napi_ref num, data, recv, counts; } shared;

static void free_memory(napi_env env, void *data, void *hint) { free(data); }

static void throw_msg(napi_env env, const char *msg) { napi_throw_error(env, NULL, msg); }

/*
 * libfuse says why a mount fails through its log ("fuse: failed to open
 * /dev/fuse: Permission denied"); while mounting we keep its words for the
 * error we throw (the user sees them, not a pointer to a log), and still
 * print them on stderr as libfuse would. Only the JS thread mounts.
 */
static char mount_log[1024];

static void capture_log(enum fuse_log_level level, const char *fmt, va_list ap) {
  char line[512];
  va_list copy;
  va_copy(copy, ap);
  vsnprintf(line, sizeof line, fmt, copy);
  va_end(copy);
  fputs(line, stderr);
  if (level > FUSE_LOG_ERR) return;
  line[strcspn(line, "\n")] = '\0';
  size_t used = strlen(mount_log);
  if (used > 0 && used + 2 < sizeof mount_log) { strcpy(mount_log + used, "; "); used += 2; }
  snprintf(mount_log + used, sizeof mount_log - used, "%s", line);
}

/* "what failed: libfuse's words", or "what failed (libfuse said nothing)". */
static void throw_mount_error(napi_env env, const char *what) {
  char msg[1200];
  if (mount_log[0]) snprintf(msg, sizeof msg, "%s: %s", what, mount_log);
  else snprintf(msg, sizeof msg, "%s (libfuse said nothing more)", what);
  throw_msg(env, msg);
}

/*
 * libfuse reads and writes /dev/fuse through these (fuse_session_custom_io,
 * same fd). One thing is ours: libfuse 3.14 predates HANDLE_KILLPRIV_V2, so
 * when the kernel offers it we add it to the INIT reply. With it the kernel
 * asks GETXATTR security.capability only at an inode's first write (SB_NOSEC;
 * setuid/setgid files excepted) instead of before every WRITE, no GETATTR
 * before a chown, and tells us, per request, when to clear setuid/setgid
 * (kill_suidgid, reply.c); the file system does it as ext4 does
 * (src/fuse/state.ts).
 */
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata) {
  (void)userdata;
  return read(fd, buf, len);
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata) {
  session *s = userdata;
  if (s->init_flags && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header) &&
      iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
    const struct fuse_out_header *h = iov[0].iov_base;
    struct fuse_init_out *o = iov[1].iov_base;
    if (h->unique == s->init_unique && h->error == 0) {
      if ((s->init_flags & FUSE_HANDLE_KILLPRIV_V2) && !(o->flags & FUSE_HANDLE_KILLPRIV)) o->flags |= FUSE_HANDLE_KILLPRIV_V2;
      s->killpriv_v2 = (o->flags & FUSE_HANDLE_KILLPRIV_V2) != 0;
    }
  }
  return writev(fd, iov, count);
}

const struct fuse_custom_io DAXVM_IO = {.writev = io_writev, .read = io_read};

static session *get_session(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "not a daxvm_fuse session");
    return NULL;
  }
  return p;
}

static void end_session(session *s, const char *reason) {
  napi_env env = s->env;
  if (s->ended) return;
  s->ended = true;
  if (s->polling) {
    uv_poll_stop(&s->poll);
    s->polling = false;
  }
  napi_value fn, undef, why;
  if (s->on_end && napi_get_reference_value(env, s->on_end, &fn) == napi_ok && fn) {
    napi_get_undefined(env, &undef);
    napi_create_string_utf8(env, reason, NAPI_AUTO_LENGTH, &why);
    if (napi_call_function(env, undef, fn, 1, &why, NULL) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      report_error(s, err);
    }
  }
}

static void on_readable(uv_poll_t *h, int status, int events) {
  session *s = h->data;
  napi_env env = s->env;
  napi_handle_scope outer;
  napi_callback_scope cscope;
  napi_value resource;
  napi_open_handle_scope(env, &outer);
  napi_get_reference_value(env, s->resource, &resource);
  /* One callback scope per batch: promise jobs and nextTicks run after it. */
  napi_open_callback_scope(env, resource, s->actx, &cscope);
  for (int i = 0; i < BATCH && !s->closed && !s->ended; i++) {
    int r = fuse_session_receive_buf(s->se, &s->buf);
    if (r == -EAGAIN) break;
    if (r == -EINTR) continue;
    if (r == 0 || fuse_session_exited(s->se)) {
      end_session(s, "the mount is gone (ENODEV: unmounted or aborted)");
      break;
    }
    if (r < 0) {
      char why[128];
      snprintf(why, sizeof why, "reading /dev/fuse failed: %s", strerror(-r));
      end_session(s, why);
      break;
    }
    /* struct fuse_in_header { uint32 len; uint32 opcode; ... } (linux/fuse.h) */
    uint32_t opcode;
    memcpy(&opcode, (const char *)s->buf.mem + 4, sizeof opcode);
    if (opcode < OPCODE_SLOTS) s->counts[opcode] += 1;
    if (opcode == FUSE_INIT && (size_t)r >= sizeof(struct fuse_in_header) + offsetof(struct fuse_init_in, flags) + 4) {
      const struct fuse_in_header *in = (const void *)s->buf.mem;
      const struct fuse_init_in *init = (const void *)(in + 1);
      s->init_unique = in->unique;
      s->init_flags = init->flags;
    }
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    fuse_session_process_buf(s->se, &s->buf);
    s->init_flags = 0;
    napi_close_handle_scope(env, scope);
    if (fuse_session_exited(s->se)) {
      end_session(s, "the session was told to exit");
      break;
    }
  }
  napi_close_callback_scope(env, cscope);
  napi_close_handle_scope(env, outer);
}

static napi_value make_buffer(napi_env env, void *mem, size_t size, napi_ref *ref, bool f64) {
  napi_value ab, view;
  if (napi_create_external_arraybuffer(env, mem, size, free_memory, NULL, &ab) != napi_ok) return NULL;
  if (f64) napi_create_typedarray(env, napi_float64_array, size / sizeof(double), ab, 0, &view);
  else napi_create_typedarray(env, napi_uint8_array, size, ab, 0, &view);
  napi_create_reference(env, view, 1, ref);
  return view;
}

static double get_num(napi_env env, napi_value obj, const char *key, double dflt) {
  napi_value v;
  double d;
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return dflt;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return dflt;
  if (napi_get_value_double(env, v, &d) != napi_ok) return dflt;
  return d;
}

static napi_ref fn_ref(napi_env env, napi_value obj, const char *key) {
  napi_value v;
  napi_valuetype t;
  napi_ref r = NULL;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_function) return NULL;
  napi_create_reference(env, v, 1, &r);
  return r;
}

static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], ext, name;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char mnt[4096], opts[4096];
  size_t len;
  if (argc < 4 || napi_get_value_string_utf8(env, argv[0], mnt, sizeof mnt, &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], opts, sizeof opts, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "mount(mountpoint, options, handlers, config)");
    return NULL;
  }
  session *s = calloc(1, sizeof *s);
  shared *sh = calloc(1, sizeof *sh);
  if (!s || !sh) { throw_msg(env, "out of memory"); return NULL; }
  s->env = env;
  for (int i = 0; i < OP_COUNT; i++) s->fn[i] = fn_ref(env, argv[2], OP_NAMES[i]);
  s->on_end = fn_ref(env, argv[2], "end");
  s->on_error = fn_ref(env, argv[2], "error");
  s->neg_timeout = get_num(env, argv[3], "negTimeout", 0);
  s->max_write = (unsigned)get_num(env, argv[3], "maxWrite", 0);
  s->no_open = get_num(env, argv[3], "noOpen", 0) != 0;

  s->num = calloc(N_SLOTS, sizeof(double));
  s->counts = calloc(OPCODE_SLOTS, sizeof(double));
  s->data = malloc(DATA_SIZE);
  s->recv = malloc(RECV_SIZE);
  if (!s->num || !s->counts || !s->data || !s->recv) { throw_msg(env, "out of memory"); return NULL; }
  s->data_size = DATA_SIZE;
  s->recv_size = RECV_SIZE;
  /* From here the ArrayBuffers own the memory (freed when they are collected). */
  make_buffer(env, s->num, N_SLOTS * sizeof(double), &sh->num, true);
  make_buffer(env, s->counts, OPCODE_SLOTS * sizeof(double), &sh->counts, true);
  make_buffer(env, s->data, DATA_SIZE, &sh->data, false);
  make_buffer(env, s->recv, RECV_SIZE, &sh->recv, false);

  char *args_v[] = {"daxvm", "-o", opts, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
  mount_log[0] = '\0';
  fuse_set_log_func(capture_log);
  s->se = fuse_session_new(&args, &DAXVM_LL_OPS, sizeof DAXVM_LL_OPS, s);
  fuse_opt_free_args(&args);
  if (!s->se) {
    fuse_set_log_func(NULL);
    throw_mount_error(env, "libfuse refused the options");
    return NULL;
  }
  if (fuse_session_mount(s->se, mnt) != 0) {
    fuse_session_destroy(s->se);
    s->se = NULL;
    fuse_set_log_func(NULL);
    throw_mount_error(env, "fuse mount failed");
    return NULL;
  }
  fuse_set_log_func(NULL);
  int fd = fuse_session_fd(s->se);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (fuse_session_custom_io(s->se, &DAXVM_IO, fd) != 0) {
    fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    s->se = NULL;
    throw_msg(env, "libfuse refused our I/O functions (fuse_session_custom_io)");
    return NULL;
  }
  s->buf.mem = s->recv;
  s->buf.size = RECV_SIZE;

  napi_value resource;
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &s->resource);
  napi_create_string_utf8(env, "daxvm_fuse", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, resource, name, &s->actx);

  struct uv_loop_s *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_poll_init(loop, &s->poll, fd);
  s->poll.data = s;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  s->polling = true;

  /* The session struct is never freed: one per mount, and JS may hold it after close. */
  napi_create_external(env, s, NULL, sh, &ext);
  napi_value shared_obj;
  napi_create_external(env, sh, NULL, NULL, &shared_obj);
  napi_set_named_property(env, resource, "shared", shared_obj);
  return ext;
}

static napi_value js_buffers(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v, res, shv;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session *s = argc ? get_session(env, argv[0]) : NULL;
  if (!s) return NULL;
  void *p;
  napi_get_reference_value(env, s->resource, &res);
  napi_get_named_property(env, res, "shared", &shv);
  napi_get_value_external(env, shv, &p);
  shared *sh = p;
  napi_create_object(env, &out);
  napi_get_reference_value(env, sh->num, &v);
  napi_set_named_property(env, out, "num", v);
  napi_get_reference_value(env, sh->data, &v);
  napi_set_named_property(env, out, "data", v);
  napi_get_reference_value(env, sh->recv, &v);
  napi_set_named_property(env, out, "recv", v);
  napi_get_reference_value(env, sh->counts, &v);
  napi_set_named_property(env, out, "counts", v);
  return out;
}

static napi_value js_inval_inode(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  double ino;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session *s = argc == 2 ? get_session(env, argv[0]) : NULL;
  if (!s) return NULL;
  if (napi_get_value_double(env, argv[1], &ino) != napi_ok) {
    napi_throw_type_error(env, NULL, "invalInode(session, ino)");
    return NULL;
  }
  int r = (s->se && !s->ended) ? fuse_lowlevel_notify_inval_inode(s->se, (fuse_ino_t)ino, -1, 0) : -ENOTCONN;
  napi_create_int32(env, r, &out);
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool unmount = true;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  session *s = argc ? get_session(env, argv[0]) : NULL;
  if (!s) return NULL;
  if (argc > 1) napi_get_value_bool(env, argv[1], &unmount);
  if (s->closed) return NULL;
  s->closed = true;
  if (s->polling) {
    uv_poll_stop(&s->poll);
    s->polling = false;
  }
  uv_close((uv_handle_t *)&s->poll, NULL);
  if (s->se) {
    /* libfuse does nothing when the connection is gone; the caller says when it unmounted already
     * (after a lazy unmount the path may hold another mount by now). */
    if (unmount) fuse_session_unmount(s->se);
    fuse_session_destroy(s->se);
    s->se = NULL;
  }
  for (int i = 0; i < OP_COUNT; i++) if (s->fn[i]) napi_delete_reference(env, s->fn[i]), s->fn[i] = NULL;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
    {"buffers", NULL, js_buffers, NULL, NULL, NULL, napi_default, NULL},
    {"dirAdd", NULL, js_dir_add, NULL, NULL, NULL, napi_default, NULL},
    {"invalInode", NULL, js_inval_inode, NULL, NULL, NULL, napi_default, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value v;
  napi_create_uint32(env, N_SLOTS, &v);
  napi_set_named_property(env, exports, "NUM_SLOTS", v);
  napi_create_uint32(env, OP_COUNT, &v);
  napi_set_named_property(env, exports, "OP_COUNT", v);
  napi_create_string_utf8(env, fuse_pkgversion(), NAPI_AUTO_LENGTH, &v); /* the libfuse loaded, for daxvm --version */
  napi_set_named_property(env, exports, "LIBFUSE_VERSION", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
