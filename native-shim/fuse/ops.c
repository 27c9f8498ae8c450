/*
 * libfuse3 low-level ops -> JavaScript: each op turns its arguments into
 * numbers and latin1 strings, calls the JS function of the same name
 * synchronously (we are on the JS thread, see session.c), and replies from
 * the number it returns and the shared `num` / `data` buffers (reply.c).
 * Errors and replies are kept apart: a negative return is fuse_reply_err,
 * nothing else.
 * Over 400 lines on purpose: one short function per op (29) beside the
 * table that names them; split by kind, the table would sit apart from them.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fuse_glue.h"

const char *const OP_NAMES[OP_COUNT] = {
  "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir",
  "unlink", "rmdir", "symlink", "rename", "link", "open", "read", "write",
  "release", "fsync", "opendir", "readdir", "releasedir", "fsyncdir",
  "statfs", "setxattr", "getxattr", "listxattr", "removexattr", "create",
  "fallocate", "lseek",
};

#define ENV napi_env env = s->env

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  session *s = userdata;
  /* Not HANDLE_KILLPRIV (v1: it would clear setuid even for root, unlike ext4); v2, which
   * follows ext4's rules, is added to the INIT reply by session.c (libfuse 3.14 lacks it). */
  conn->want &= ~(FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                  FUSE_CAP_SPLICE_MOVE | FUSE_CAP_WRITEBACK_CACHE);
  /* Fewer, larger WRITEs (libfuse's receive buffer holds FUSE_MAX_MAX_PAGES). */
  if (s->max_write) conn->max_write = s->max_write;
  /* Our times have millisecond precision: the kernel rounds the times it keeps alike. */
  conn->time_gran = 1000000;
  /* A symlink's target never changes (no operation rewrites it; an inode number comes back only after the
   * kernel forgot the old one): the kernel may keep it, and a path through a symlink asks READLINK once, not at
   * every walk (libfuse 3 leaves this off). */
  if (conn->capable & FUSE_CAP_CACHE_SYMLINKS) conn->want |= FUSE_CAP_CACHE_SYMLINKS;
  if (s->no_open) {
    /* With no OPEN the kernel would skip the truncate of open(O_TRUNC) (fuse_do_setattr takes ATTR_OPEN as
     * done by OPEN when atomic_o_trunc is on): without it the kernel sends it as a SETATTR of size 0. */
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    /* Every read(2) then asks GETATTR once the attributes expired, and a changed mtime or size drops the
     * pages: what keeps the never-cached `.daxvm/` files fresh without direct_io (control.ts). */
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
  } else {
    /* libfuse 3 asks for auto_inval_data by default: every read(2) whose attributes are stale asks GETATTR
     * first, and the first read after a write always is (the write marks size and mtime stale), then drops
     * the pages the write just filled, as the mtime moved. Here each OPEN drops the pages already, and
     * nothing changes a file's mtime or size behind the kernel (a library's msync moves the mtime with a
     * SETATTR through the mount): the GETATTR would tell the kernel nothing. */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  }
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, parent), jstr(env, name)};
  reply_entry(s, req, call_op(s, req, OP_LOOKUP, 2, a));
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, ino), jnum(env, (double)nlookup)};
  call_op(s, req, OP_FORGET, 2, a);
  fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f) {
  session *s = sess(req); ENV;
  for (size_t i = 0; i < count; i++) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value a[2] = {jnum(env, f[i].ino), jnum(env, (double)f[i].nlookup)};
    call_op(s, req, OP_FORGET, 2, a);
    napi_close_handle_scope(env, scope);
  }
  fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, ino), jnum(env, fh_of(fi))};
  reply_attr(s, req, call_op(s, req, OP_GETATTR, 2, a));
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[9] = {
    jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, to_set), jnum(env, attr->st_mode),
    jnum(env, attr->st_uid), jnum(env, attr->st_gid), jnum(env, (double)attr->st_size),
    jnum(env, ms_of(attr->st_atim)), jnum(env, ms_of(attr->st_mtim)),
  };
  s->num[N_KILL_SUIDGID] = kill_suidgid(s);
  reply_attr(s, req, call_op(s, req, OP_SETATTR, 9, a));
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino) {
  session *s = sess(req); ENV;
  napi_value a[1] = {jnum(env, ino)};
  double r = call_op(s, req, OP_READLINK, 1, a);
  if (r < 0) { fuse_reply_err(req, (int)-r); return; }
  if (r >= (double)s->data_size) { fuse_reply_err(req, ENAMETOOLONG); return; }
  s->data[(size_t)r] = 0;
  fuse_reply_readlink(req, (const char *)s->data);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  session *s = sess(req); ENV;
  napi_value a[4] = {jnum(env, parent), jstr(env, name), jnum(env, mode), jnum(env, (double)rdev)};
  reply_entry(s, req, call_op(s, req, OP_MKNOD, 4, a));
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  session *s = sess(req); ENV;
  napi_value a[3] = {jnum(env, parent), jstr(env, name), jnum(env, mode)};
  double r = call_op(s, req, OP_MKDIR, 3, a);
  if (r < 0) fuse_reply_err(req, (int)-r); /* never a negative entry for a failed create */
  else reply_entry(s, req, r);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, parent), jstr(env, name)};
  reply_status(req, call_op(s, req, OP_UNLINK, 2, a));
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, parent), jstr(env, name)};
  reply_status(req, call_op(s, req, OP_RMDIR, 2, a));
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  session *s = sess(req); ENV;
  napi_value a[3] = {jnum(env, parent), jstr(env, name), jstr(env, link)};
  double r = call_op(s, req, OP_SYMLINK, 3, a);
  if (r < 0) fuse_reply_err(req, (int)-r);
  else reply_entry(s, req, r);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
  session *s = sess(req); ENV;
  napi_value a[5] = {jnum(env, parent), jstr(env, name), jnum(env, newparent), jstr(env, newname), jnum(env, flags)};
  reply_status(req, call_op(s, req, OP_RENAME, 5, a));
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  session *s = sess(req); ENV;
  napi_value a[3] = {jnum(env, ino), jnum(env, newparent), jstr(env, newname)};
  double r = call_op(s, req, OP_LINK, 3, a);
  if (r < 0) fuse_reply_err(req, (int)-r);
  else reply_entry(s, req, r);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  /* -o no_open: the kernel takes ENOSYS as "no open needed", opens with FOPEN_KEEP_CACHE and never sends
   * OPEN or RELEASE of a regular file again on this connection (fs/fuse/file.c, fuse_file_open). */
  if (s->no_open) { fuse_reply_err(req, ENOSYS); return; }
  napi_value a[2] = {jnum(env, ino), jnum(env, fi->flags)};
  s->num[N_KILL_SUIDGID] = kill_suidgid(s);
  double r = call_op(s, req, OP_OPEN, 2, a);
  if (r < 0) { fuse_reply_err(req, (int)-r); return; }
  set_open(s, fi);
  if (fuse_reply_open(req, fi) == -ENOENT) {
    /* The caller was interrupted: nobody will release this handle but us. */
    napi_value b[3] = {jnum(env, ino), jnum(env, (double)fi->fh), jnum(env, fi->flags)};
    call_op(s, NULL, OP_RELEASE, 3, b);
  }
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  if (size > s->data_size) size = s->data_size;
  napi_value a[4] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, (double)off), jnum(env, (double)size)};
  double r = call_op(s, req, OP_READ, 4, a);
  if (r < 0) { fuse_reply_err(req, (int)-r); return; }
  fuse_reply_buf(req, (const char *)s->data, r > (double)size ? size : (size_t)r);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  double at = recv_offset(s, buf);
  if (at < 0 || at + (double)size > (double)s->recv_size) { fuse_reply_err(req, EIO); return; }
  /* fi->flags: the writer's open flags (fuse_write_in.flags), its O_APPEND when there is no handle (-o no_open). */
  napi_value a[6] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, (double)off), jnum(env, (double)size), jnum(env, at),
                     jnum(env, fi->flags)};
  s->num[N_KILL_SUIDGID] = kill_suidgid(s);
  double r = call_op(s, req, OP_WRITE, 6, a);
  if (r < 0) fuse_reply_err(req, (int)-r);
  else fuse_reply_write(req, (size_t)r);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[3] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, fi->flags)};
  reply_status(req, call_op(s, req, OP_RELEASE, 3, a));
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[3] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, datasync)};
  reply_status(req, call_op(s, req, OP_FSYNC, 3, a));
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, ino), jnum(env, fi->flags)};
  double r = call_op(s, req, OP_OPENDIR, 2, a);
  if (r < 0) { fuse_reply_err(req, (int)-r); return; }
  set_open(s, fi);
  if (fuse_reply_open(req, fi) == -ENOENT) {
    napi_value b[2] = {jnum(env, ino), jnum(env, (double)fi->fh)};
    call_op(s, NULL, OP_RELEASEDIR, 2, b);
  }
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi, bool plus) {
  session *s = sess(req); ENV;
  char *buf = malloc(size ? size : 1);
  if (!buf) { fuse_reply_err(req, ENOMEM); return; }
  s->dir_req = req;
  s->dir_buf = buf;
  s->dir_size = size;
  s->dir_len = 0;
  s->dir_plus = plus;
  napi_value a[4] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, (double)off), jnum(env, plus)};
  double r = call_op(s, req, OP_READDIR, 4, a);
  s->dir_req = NULL;
  s->dir_buf = NULL;
  if (r < 0) fuse_reply_err(req, (int)-r);
  else fuse_reply_buf(req, buf, s->dir_len);
  free(buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, fi, false);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, fi, true);
}

/* dirAdd(session, name, nextOffset) -> true when added, false when the reply is full. */
napi_value js_dir_add(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  void *ext = NULL;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_external(env, argv[0], &ext) != napi_ok || !ext) {
    napi_throw_type_error(env, NULL, "dirAdd(session, name, offset)");
    return NULL;
  }
  session *s = ext;
  if (!s->dir_req) {
    napi_throw_error(env, NULL, "dirAdd outside readdir");
    return NULL;
  }
  char name[1024];
  size_t len = 0;
  double off;
  if (napi_get_value_string_latin1(env, argv[1], name, sizeof name, &len) != napi_ok ||
      napi_get_value_double(env, argv[2], &off) != napi_ok) {
    napi_throw_type_error(env, NULL, "dirAdd: name must be a string, offset a number");
    return NULL;
  }
  size_t room = s->dir_size - s->dir_len, need;
  if (s->dir_plus) {
    struct fuse_entry_param e;
    fill_entry(s->num, &e);
    need = fuse_add_direntry_plus(s->dir_req, s->dir_buf + s->dir_len, room, name, &e, (off_t)off);
  } else {
    struct stat st;
    memset(&st, 0, sizeof st);
    st.st_ino = (ino_t)s->num[N_INO];
    st.st_mode = (mode_t)s->num[N_MODE];
    need = fuse_add_direntry(s->dir_req, s->dir_buf + s->dir_len, room, name, &st, (off_t)off);
  }
  bool added = need <= room;
  if (added) s->dir_len += need;
  napi_get_boolean(env, added, &result);
  return result;
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, ino), jnum(env, fh_of(fi))};
  reply_status(req, call_op(s, req, OP_RELEASEDIR, 2, a));
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[3] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, datasync)};
  reply_status(req, call_op(s, req, OP_FSYNCDIR, 3, a));
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  session *s = sess(req); ENV;
  napi_value a[1] = {jnum(env, ino)};
  double r = call_op(s, req, OP_STATFS, 1, a);
  if (r < 0) { fuse_reply_err(req, (int)-r); return; }
  const double *n = s->num; /* bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax */
  struct statvfs v;
  memset(&v, 0, sizeof v);
  v.f_bsize = (unsigned long)n[0];
  v.f_frsize = (unsigned long)n[1];
  v.f_blocks = (fsblkcnt_t)n[2];
  v.f_bfree = (fsblkcnt_t)n[3];
  v.f_bavail = (fsblkcnt_t)n[4];
  v.f_files = (fsfilcnt_t)n[5];
  v.f_ffree = (fsfilcnt_t)n[6];
  v.f_favail = (fsfilcnt_t)n[7];
  v.f_namemax = (unsigned long)n[8];
  fuse_reply_statfs(req, &v);
}

/*
 * The mount stores user.* and trusted.* attributes only (STORED_XATTR in src/fuse/ops-attrs.ts, which says the
 * same to callers of the ops without this layer): any other name is refused when set (EOPNOTSUPP) and cannot exist
 * when asked for (ENODATA), answered here without a call into JS. No security.* attribute, so never a file
 * capability for a write or chown to remove (HANDLE_KILLPRIV_V2, session.c); no POSIX ACL (but root's minimal
 * access ACL is a mode, set by JS).
 */
static bool stored_xattr(const char *name) {
  return strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0;
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags) {
  session *s = sess(req); ENV;
  /* system.posix_acl_access goes to JS: root's minimal ACL is applied as a mode (ops-attrs.ts). */
  if (!stored_xattr(name) && strcmp(name, "system.posix_acl_access") != 0) { fuse_reply_err(req, EOPNOTSUPP); return; }
  double at = size ? recv_offset(s, value) : 0;
  if (at < 0) { fuse_reply_err(req, EIO); return; }
  napi_value a[5] = {jnum(env, ino), jstr(env, name), jnum(env, at), jnum(env, (double)size), jnum(env, flags)};
  reply_status(req, call_op(s, req, OP_SETXATTR, 5, a));
}

/* getxattr/listxattr: JS returns the value's length and, when size > 0 and it fits, wrote it to data. */
static void reply_xattr(session *s, fuse_req_t req, double r, size_t size) {
  if (r < 0) fuse_reply_err(req, (int)-r);
  else if (size == 0) fuse_reply_xattr(req, (size_t)r);
  else if (r > (double)size || r > (double)s->data_size) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, (const char *)s->data, (size_t)r);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  session *s = sess(req); ENV;
  /* The kernel asks security.capability at every chown of a file (tar x, cp -a: once per file). */
  if (!stored_xattr(name)) { fuse_reply_err(req, ENODATA); return; }
  napi_value a[3] = {jnum(env, ino), jstr(env, name), jnum(env, (double)size)};
  reply_xattr(s, req, call_op(s, req, OP_GETXATTR, 3, a), size);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, ino), jnum(env, (double)size)};
  reply_xattr(s, req, call_op(s, req, OP_LISTXATTR, 2, a), size);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  session *s = sess(req); ENV;
  napi_value a[2] = {jnum(env, ino), jstr(env, name)};
  reply_status(req, call_op(s, req, OP_REMOVEXATTR, 2, a));
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[4] = {jnum(env, parent), jstr(env, name), jnum(env, mode), jnum(env, fi->flags)};
  double r = call_op(s, req, OP_CREATE, 4, a);
  if (r < 0) { fuse_reply_err(req, (int)-r); return; }
  struct fuse_entry_param e;
  fill_entry(s->num, &e);
  set_open(s, fi);
  if (fuse_reply_create(req, &e, fi) == -ENOENT) {
    napi_value b[3] = {jnum(env, e.ino), jnum(env, (double)fi->fh), jnum(env, fi->flags)};
    call_op(s, NULL, OP_RELEASE, 3, b);
  }
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[5] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, mode), jnum(env, (double)off), jnum(env, (double)len)};
  reply_status(req, call_op(s, req, OP_FALLOCATE, 5, a));
}

static void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi) {
  session *s = sess(req); ENV;
  napi_value a[4] = {jnum(env, ino), jnum(env, fh_of(fi)), jnum(env, (double)off), jnum(env, whence)};
  double r = call_op(s, req, OP_LSEEK, 4, a);
  if (r < 0) fuse_reply_err(req, (int)-r);
  else fuse_reply_lseek(req, (off_t)r);
}

/* No flush (every write is answered when done: nothing to report at close; the
 * kernel stops sending FLUSH after our first ENOSYS) and no access (the kernel
 * checks permissions: default_permissions). */
const struct fuse_lowlevel_ops DAXVM_LL_OPS = {
  .init = ll_init,
  .lookup = ll_lookup,
  .forget = ll_forget,
  .forget_multi = ll_forget_multi,
  .getattr = ll_getattr,
  .setattr = ll_setattr,
  .readlink = ll_readlink,
  .mknod = ll_mknod,
  .mkdir = ll_mkdir,
  .unlink = ll_unlink,
  .rmdir = ll_rmdir,
  .symlink = ll_symlink,
  .rename = ll_rename,
  .link = ll_link,
  .open = ll_open,
  .read = ll_read,
  .write = ll_write,
  .release = ll_release,
  .fsync = ll_fsync,
  .opendir = ll_opendir,
  .readdir = ll_readdir,
  .readdirplus = ll_readdirplus,
  .releasedir = ll_releasedir,
  .fsyncdir = ll_fsyncdir,
  .statfs = ll_statfs,
  .setxattr = ll_setxattr,
  .getxattr = ll_getxattr,
  .listxattr = ll_listxattr,
  .removexattr = ll_removexattr,
  .create = ll_create,
  .fallocate = ll_fallocate,
  .lseek = ll_lseek,
};
