/*
 * daxvm_fuse: a thin Node-API binding over libfuse3's low-level API, driven
 * from the JS thread (see session.c). What session.c and ops.c share.
 *
 * The contract with JavaScript (src/fuse/lowlevel.ts mirrors it):
 * - one JS function per op, called with numbers and latin1 strings, returning
 *   a number: a negative errno, or 0 / a byte count / an offset;
 * - results other than the return value go through `num`, a Float64Array
 *   shared with C (slot names below), and `data`, a Buffer shared with C for
 *   reply bytes (read, readlink, xattrs);
 * - write and setxattr data is never copied: JS gets its offset in `recv`,
 *   the Buffer libfuse receives requests into.
 */
#ifndef DAXVM_FUSE_GLUE_H
#define DAXVM_FUSE_GLUE_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

/* Slots of `num`: attributes and entry parameters (JS fills them for replies). */
enum num_slot {
  N_INO, N_GEN, N_MODE, N_NLINK, N_UID, N_GID, N_RDEV, N_SIZE, N_BLOCKS, N_BLKSIZE,
  N_ATIME, N_MTIME, N_CTIME, /* ms since the epoch */
  N_ATTR_TIMEOUT, N_ENTRY_TIMEOUT, /* seconds */
  N_FH, N_OPEN_FLAGS, /* OPEN_* bits below */
  /* statfs reuses N_INO.. : see ops.c */
  N_CTX_UID = 20, N_CTX_GID, N_CTX_PID, N_CTX_UMASK, /* the caller, set before each op */
  N_KILL_SUIDGID, /* 1: this write, setattr or open asks us to clear setuid/setgid (KILLPRIV_V2) */
  N_SLOTS = 32
};

#define OPEN_DIRECT_IO 1
#define OPEN_KEEP_CACHE 2
#define OPEN_CACHE_DIR 4

/* Ops JS may implement, in the order of OP_NAMES (ops.c). */
enum op_index {
  OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR,
  OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE,
  OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR,
  OP_STATFS, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE,
  OP_FALLOCATE, OP_LSEEK, OP_COUNT
};
extern const char *const OP_NAMES[OP_COUNT];

/* Kernel opcodes counted per request (fuse_kernel.h numbers are below 64). */
#define OPCODE_SLOTS 64

typedef struct session {
  napi_env env;
  struct fuse_session *se;
  uv_poll_t poll;
  bool polling, closed, ended;
  struct fuse_buf buf;       /* its mem is `recv` */
  unsigned char *recv;
  size_t recv_size;
  double *num;
  unsigned char *data;
  size_t data_size;
  double *counts;            /* OPCODE_SLOTS request counters */
  napi_ref fn[OP_COUNT];     /* NULL: not implemented (ENOSYS) */
  napi_ref on_end, on_error; /* functions */
  napi_ref resource;
  napi_async_context actx;
  napi_ref self;             /* the External, while polling (keeps us alive) */
  /* The readdir reply being built (dirAdd). */
  fuse_req_t dir_req;
  char *dir_buf;
  size_t dir_size, dir_len;
  bool dir_plus;
  double neg_timeout;        /* seconds a negative lookup may be cached; 0: never */
  unsigned max_write;
  /* -o no_open: OPEN answers ENOSYS, so the kernel sends neither OPEN nor RELEASE again (fc->no_open). */
  bool no_open;
  /* INIT: the kernel's offer (fuse_init_in.flags) and the request's id, while it is processed. */
  uint32_t init_flags;
  uint64_t init_unique;
  bool killpriv_v2;          /* negotiated: we clear setuid/setgid when a request says so */
} session;

/* reply.c */
session *sess(fuse_req_t req);
napi_value jnum(napi_env env, double v);
napi_value jstr(napi_env env, const char *s);
struct timespec ts_of(double ms);
double ms_of(struct timespec t);
void fill_stat(const double *n, struct stat *st);
void fill_entry(const double *n, struct fuse_entry_param *e);
/* Reply an entry (r >= 0), a cacheable negative entry (ENOENT, neg_timeout), or the error. */
void reply_entry(session *s, fuse_req_t req, double r);
void reply_attr(session *s, fuse_req_t req, double r);
void reply_status(fuse_req_t req, double r);
void set_open(session *s, struct fuse_file_info *fi);
double fh_of(struct fuse_file_info *fi);
/* Offset of p in the receive buffer (write data, xattr values), or -1. */
double recv_offset(session *s, const void *p);
/* Does the request being processed (write, setattr, open) ask us to clear setuid/setgid? */
bool kill_suidgid(session *s);
/* libfuse's I/O on /dev/fuse, through us: the INIT reply gains HANDLE_KILLPRIV_V2 (session.c). */
extern const struct fuse_custom_io DAXVM_IO;

/* ops.c */
extern const struct fuse_lowlevel_ops DAXVM_LL_OPS;
/* Call JS op `op` with argv; its number, or -EIO (the exception goes to on_error). */
double call_op(session *s, fuse_req_t req, int op, size_t argc, napi_value *argv);
/* dirAdd(session, name, nextOffset): add one entry to the readdir reply being built. */
napi_value js_dir_add(napi_env env, napi_callback_info info);
void report_error(session *s, napi_value err);

#endif
