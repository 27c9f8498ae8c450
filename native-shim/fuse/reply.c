/*
 * From JS's answer to libfuse's reply: calling a JS op (call_op), and turning
 * its number and the shared `num` slots into entries, attributes and open
 * parameters. Times cross as milliseconds (the pool's precision).
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <linux/fuse.h>

#include "fuse_glue.h"

session *sess(fuse_req_t req) { return (session *)fuse_req_userdata(req); }

napi_value jnum(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

napi_value jstr(napi_env env, const char *s) {
  napi_value r;
  napi_create_string_latin1(env, s, NAPI_AUTO_LENGTH, &r);
  return r;
}

void report_error(session *s, napi_value err) {
  napi_env env = s->env;
  napi_value fn, undef;
  if (!s->on_error || napi_get_reference_value(env, s->on_error, &fn) != napi_ok || !fn) return;
  napi_get_undefined(env, &undef);
  if (napi_call_function(env, undef, fn, 1, &err, NULL) == napi_pending_exception) {
    napi_value again;
    napi_get_and_clear_last_exception(env, &again);
  }
}

double call_op(session *s, fuse_req_t req, int op, size_t argc, napi_value *argv) {
  napi_env env = s->env;
  napi_value fn, undef, result;
  if (!s->fn[op] || napi_get_reference_value(env, s->fn[op], &fn) != napi_ok || !fn) return -ENOSYS;
  if (req) {
    const struct fuse_ctx *c = fuse_req_ctx(req);
    s->num[N_CTX_UID] = c->uid;
    s->num[N_CTX_GID] = c->gid;
    s->num[N_CTX_PID] = c->pid;
    s->num[N_CTX_UMASK] = c->umask;
  }
  napi_get_undefined(env, &undef);
  napi_status st = napi_call_function(env, undef, fn, argc, argv, &result);
  if (st != napi_ok) {
    napi_value err;
    if (napi_get_and_clear_last_exception(env, &err) == napi_ok && err) report_error(s, err);
    return -EIO;
  }
  double v;
  if (napi_get_value_double(env, result, &v) != napi_ok || isnan(v)) return -EIO;
  return v;
}

/* ms since the epoch -> timespec (floor, so times before 1970 stay right). */
struct timespec ts_of(double ms) {
  struct timespec t;
  double sec = floor(ms / 1000.0);
  t.tv_sec = (time_t)sec;
  long ns = (long)llround((ms - sec * 1000.0) * 1e6);
  if (ns >= 1000000000L) ns = 999999999L;
  if (ns < 0) ns = 0;
  t.tv_nsec = ns;
  return t;
}

double ms_of(struct timespec t) { return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6; }

void fill_stat(const double *n, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = (ino_t)n[N_INO];
  st->st_mode = (mode_t)n[N_MODE];
  st->st_nlink = (nlink_t)n[N_NLINK];
  st->st_uid = (uid_t)n[N_UID];
  st->st_gid = (gid_t)n[N_GID];
  st->st_rdev = (dev_t)n[N_RDEV];
  st->st_size = (off_t)n[N_SIZE];
  st->st_blocks = (blkcnt_t)n[N_BLOCKS];
  st->st_blksize = (blksize_t)n[N_BLKSIZE];
  st->st_atim = ts_of(n[N_ATIME]);
  st->st_mtim = ts_of(n[N_MTIME]);
  st->st_ctim = ts_of(n[N_CTIME]);
}

void fill_entry(const double *n, struct fuse_entry_param *e) {
  memset(e, 0, sizeof *e);
  e->ino = (fuse_ino_t)n[N_INO];
  e->generation = (uint64_t)n[N_GEN];
  fill_stat(n, &e->attr);
  e->attr_timeout = n[N_ATTR_TIMEOUT];
  e->entry_timeout = n[N_ENTRY_TIMEOUT];
}

void reply_entry(session *s, fuse_req_t req, double r) {
  if (r < 0) {
    if (r == -ENOENT && s->neg_timeout > 0) {
      /* A negative entry the kernel may cache: every name is made through it. */
      struct fuse_entry_param e;
      memset(&e, 0, sizeof e);
      e.entry_timeout = s->neg_timeout;
      fuse_reply_entry(req, &e);
      return;
    }
    fuse_reply_err(req, (int)-r);
    return;
  }
  struct fuse_entry_param e;
  fill_entry(s->num, &e);
  fuse_reply_entry(req, &e);
}

void reply_attr(session *s, fuse_req_t req, double r) {
  if (r < 0) { fuse_reply_err(req, (int)-r); return; }
  struct stat st;
  fill_stat(s->num, &st);
  fuse_reply_attr(req, &st, s->num[N_ATTR_TIMEOUT]);
}

void reply_status(fuse_req_t req, double r) { fuse_reply_err(req, r < 0 ? (int)-r : 0); }

void set_open(session *s, struct fuse_file_info *fi) {
  unsigned f = (unsigned)s->num[N_OPEN_FLAGS];
  fi->fh = (uint64_t)s->num[N_FH];
  fi->direct_io = (f & OPEN_DIRECT_IO) != 0;
  fi->keep_cache = (f & OPEN_KEEP_CACHE) != 0;
  fi->cache_readdir = (f & OPEN_CACHE_DIR) != 0;
}

double fh_of(struct fuse_file_info *fi) { return fi ? (double)fi->fh : 0; }

/* Offset of p in the receive buffer (write data, xattr values), or -1. */
double recv_offset(session *s, const void *p) {
  const unsigned char *c = p;
  if (c < s->recv || c > s->recv + s->recv_size) return -1;
  return (double)(c - s->recv);
}


/*
 * With HANDLE_KILLPRIV_V2 the kernel leaves clearing setuid/setgid to us and
 * says when, in the raw request (libfuse 3.14 passes none of these bits on):
 * a WRITE or a truncating OPEN by a caller without CAP_FSETID, a SETATTR that
 * truncates (same rule) or changes the owner of a non-directory.
 */
bool kill_suidgid(session *s) {
  if (!s->killpriv_v2) return false;
  const struct fuse_in_header *in = (const struct fuse_in_header *)s->buf.mem;
  const unsigned char *arg = (const unsigned char *)(in + 1);
  size_t len = in->len >= sizeof *in ? in->len - sizeof *in : 0;
  switch (in->opcode) {
  case FUSE_WRITE:
    return len >= sizeof(struct fuse_write_in) &&
           (((const struct fuse_write_in *)arg)->write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
  case FUSE_SETATTR:
    return len >= sizeof(struct fuse_setattr_in) &&
           (((const struct fuse_setattr_in *)arg)->valid & FATTR_KILL_SUIDGID) != 0;
  case FUSE_OPEN:
    return len >= sizeof(struct fuse_open_in) &&
           (((const struct fuse_open_in *)arg)->open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
  default:
    return false;
  }
}
