/*
 * The shared namespace, reader side (docs/format.md, "The namespace"): from
 * a path to a file of a daxvm mount and where its blocks are, with no
 * request to the daemon and no system call into the mount. The daemon
 * publishes names, inode attributes and extents in /dev/shm; this reads
 * them lock-free (sequence words) and checks permissions as the kernel's
 * default_permissions would, and the mount's allow_other.
 *
 * Whatever it cannot answer for sure is DVM_NS_FALLBACK: the caller then
 * goes through the mount (open(2) and the kernel's checks), as it would
 * without a namespace. No Node-API here: the Node addon and the preload
 * library both use it. Thread-safe; the mount table is re-read when the
 * kernel says it changed (poll on /proc/self/mountinfo).
 *
 * Paths: absolute, or relative to the cwd; `.`, `..` (within the mount;
 * `..` above the mount's root, or anywhere before it, falls back), repeated
 * slashes, a trailing slash (the file must be a directory), names of any
 * bytes. Symbolic links are not followed: one met inside the mount falls
 * back; a mount point reached through a symlink is not recognised (falls
 * back). A mount with another file system mounted inside it: paths into
 * that one fall back.
 */
#ifndef DAXVM_NS_H
#define DAXVM_NS_H

#include <stddef.h>
#include <stdint.h>

/* What the caller wants to do with the file (may be or'ed). */
#define DVM_NS_READ 4
#define DVM_NS_WRITE 2

/* Reasons to ask the mount instead (positive return values; dvm_ns_reason() says them in words). */
enum dvm_ns_fallback {
  DVM_NS_NOT_DAXVM = 1, /* the path is not on a daxvm mount (symbolic links and '..' on the host followed) */
  DVM_NS_NO_REGION,     /* the daemon publishes no namespace we may use */
  DVM_NS_DEAD,          /* the daemon stopped publishing */
  DVM_NS_SYMLINK,       /* a symbolic link on the path */
  DVM_NS_UNKNOWN,       /* a name or inode not published */
  DVM_NS_BUSY,          /* kept changing while being read */
  DVM_NS_DOTDOT,        /* '..' before the mount or above its root */
  DVM_NS_CONTROL,       /* the mount's .daxvm control directory */
  DVM_NS_NOT_ALLOWED,   /* not allow_other, and this process is not the mount's owner */
  DVM_NS_SUBMOUNT,      /* another file system mounted on the path */
  DVM_NS_SPECIAL,       /* not a regular file or a directory */
  DVM_NS_NO_EXTENTS,    /* the file's extents are not published, or too many for the caller */
  DVM_NS_TOO_LONG,      /* the path is longer than PATH_MAX */
  DVM_NS_ABOVE,         /* the directories above the mount point could not be checked */
  DVM_NS_REASONS
};

/* A resolved file: a snapshot of its record, valid while dvm_ns_unchanged() says so. */
typedef struct {
  int mount;        /* the mount's index for dvm_ns_mount_info() */
  uint32_t region_gen; /* the region it was read in (a new daemon makes a new one) */
  uint32_t ino, generation, seq, mode, uid, gid, flags; /* flags: DAXVM_NS_INODE_* */
  uint64_t size;
  int plain;        /* the path was already absolute and normal (no `.`, `..`, `//`, trailing slash) */
} dvm_ns_file;

/* A run of a file: `count` blocks from file block `logical` at pool block `physical`. */
typedef struct {
  uint64_t logical, physical, count;
} dvm_ns_run;

/*
 * Resolve path (len bytes, no NUL needed) for `want` (DVM_NS_READ, DVM_NS_WRITE).
 * 0: resolved, *out filled (a regular file). A negative errno: what the
 * kernel would answer (-ENOENT, -EACCES, -ENOTDIR, -EISDIR for a directory,
 * -ENAMETOOLONG, -EROFS). A positive value: enum dvm_ns_fallback.
 */
int dvm_ns_resolve(const char *path, size_t len, int want, dvm_ns_file *out);

/*
 * An open fd's file by its inode number (statx), in the region (mount,
 * region_gen) of an earlier dvm_ns_resolve of a file on the same mount: no
 * path walk; the caller's access checked as at the end of a walk. Returns as
 * dvm_ns_resolve (the caller falls back to a walk on anything but 0).
 */
int dvm_ns_file_of_ino(int mount, uint32_t region_gen, uint64_t ino, int want, dvm_ns_file *out);

/*
 * The runs of file blocks [first, end) (merged where the pool is
 * contiguous, in file order), at most max; *holes = blocks of the range no
 * extent maps. 0, or -EAGAIN (the file changed since it was resolved:
 * resolve again), or DVM_NS_NO_EXTENTS / DVM_NS_BUSY.
 */
int dvm_ns_runs(const dvm_ns_file *f, uint64_t first, uint64_t end, dvm_ns_run *runs, unsigned max, unsigned *n,
                uint64_t *holes);

/* Is the file's record still as resolved (its sequence word unmoved)? The lease ordering's step (3). */
int dvm_ns_unchanged(const dvm_ns_file *f);

/* The mount's mount point and pool file (strings owned by the library, valid for the process's life). */
int dvm_ns_mount_info(int mount, const char **mountpoint, const char **pool, uint64_t *mount_id);

/* A reason in words (for a fallback or an errno). */
const char *dvm_ns_reason(int code);

#endif
