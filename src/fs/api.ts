/**
 * The file system's contract, written once. The FUSE layer (src/fuse) and the
 * tools (fsck, info) speak to the file system only through this interface.
 *
 * - Every operation is synchronous and runs to completion: the daemon handles
 *   one request at a time on the JS thread, so no operation interleaves with
 *   another.
 * - Failures throw FsError with the errno ext4 would give; nothing else is
 *   thrown for a user's mistake. An operation that throws changed nothing.
 * - Inode numbers are stable for the life of a file (they are what `stat`
 *   shows, and the kernel's node ids). The root directory is ROOT_INO.
 * - Times are milliseconds since the epoch (the pool's precision; the kernel is told).
 * - Names, paths, symlink targets and extended attribute names are byte
 *   strings: one code unit per raw byte (latin1), any byte but '/' and NUL,
 *   UTF-8 or not (bytestr.ts). `utf8Name(text)` makes one from Unicode text.
 */

import type { Knobs } from '../core/format/superblock.js';

export type { Knobs };
// The format's numbers, part of this contract too (one home: src/core/format).
export { ROOT_INO } from '../core/format/pool.js';
export { S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO } from '../core/format/mode.js';

/** errno names used by the file system; the FUSE layer maps them to numbers. */
export type Errno =
  | 'EPERM' | 'ENOENT' | 'EIO' | 'EBADF' | 'EACCES' | 'EEXIST' | 'EXDEV'
  | 'ENOTDIR' | 'EISDIR' | 'EINVAL' | 'EFBIG' | 'ENOSPC' | 'EROFS' | 'EMLINK'
  | 'ERANGE' | 'ENAMETOOLONG' | 'ENOTEMPTY' | 'ELOOP' | 'ENODATA' | 'E2BIG'
  | 'EOPNOTSUPP' | 'EBUSY' | 'EFSCORRUPTED' | 'ENOSYS' | 'ENODEV' | 'ENXIO';

export class FsError extends Error {
  /**
   * Capture a stack trace with each FsError (the default). The daemon turns
   * this off: there an FsError is an answer (ENOENT, ENODATA...), tens of
   * thousands a second, and capturing their stacks cost it several percent
   * of its CPU; nothing ever prints them.
   */
  static stackTraces = true;
  readonly code: Errno;
  constructor(code: Errno, message?: string) {
    const limit = Error.stackTraceLimit;
    if (!FsError.stackTraces) Error.stackTraceLimit = 0;
    super(message ? `${code}: ${message}` : code);
    Error.stackTraceLimit = limit;
    this.code = code;
  }
}

export interface Attr {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  /** 512-byte units actually allocated (data and per-file metadata blocks). */
  blocks: number;
  blksize: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Bumped each time an inode number is reused (lets a client detect reuse). */
  generation: number;
}

export interface DirEntry {
  name: string;
  ino: number;
  /** File type bits (S_IFREG, S_IFDIR...). */
  type: number;
}

export interface StatFs {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namemax: number;
}

export interface Owner {
  uid: number;
  gid: number;
}

/** Pool blocks [start, start + count). */
export interface BlockRun {
  start: number;
  count: number;
}

/**
 * Leases on pool blocks held outside the daemon: the library's (later the
 * preload's) mappings of the pool, which reach file blocks directly. An open
 * file handle is not a lease: blocks a file drops (truncate, punch, zero
 * range, the 2 MiB move) are reusable once their transaction is durable, as
 * ext4's, unless a live lease covers them; those wait until it goes. The
 * FUSE layer implements this over the shared lease table (src/fuse/publish).
 */
export interface BlockLeases {
  /**
   * The pool block ranges live leases cover now, sorted and merged; leases
   * of dead holders are reaped first. The implementation orders this scan
   * after the publication of every change the caller made so far (see
   * docs/format.md, "Leases: the ordering argument"), so a block the answer
   * does not cover can be reused.
   */
  live(): BlockRun[];
  /**
   * Publish `runs` (replacing what was published) as blocks the newest
   * durable journal commit vouches for by checksum, then look for a live
   * writable lease reaching any of them. true: none does, and a client that
   * leases one later sees the runs and asks for an FSYNC first (so nothing
   * is stored there until `unvouch`). false: one does (or there are too
   * many runs to publish): do not vouch; what was published stays.
   * Sequentially consistent on both sides (docs/format.md, "The lease table").
   */
  vouch(runs: BlockRun[]): boolean;
  /** The commit that vouched is confirmed (a later one is durable): clients may store there again. */
  unvouch(): void;
}

/**
 * What an observer of the file system's in-memory state hears (the FUSE
 * layer's publisher of the shared namespace, src/fuse/publish). Events say
 * what changed; the observer reads the current state back with
 * `inodeState` and `dirNames`. Loads count as changes: what is loaded is
 * known, and may be published.
 */
export interface FsObserver {
  /** An inode was loaded, created or changed (attributes, size, blocks, table). */
  inodeChanged(ino: number): void;
  /** An inode's slot was freed. */
  inodeFreed(ino: number): void;
  /** A directory's names were loaded: every one of them is known from now on. */
  dirLoaded(ino: number): void;
  nameAdded(parent: number, name: string, ino: number): void;
  nameRemoved(parent: number, name: string): void;
  /**
   * Around each call of the contract that may change something: between
   * them the state may be half changed; after opEnd() (before the daemon
   * answers) it is whole, and the observer publishes it.
   */
  opStart(): void;
  opEnd(): void;
}

/** An inode as the file system holds it in memory now (for the observer). */
export interface InodeState {
  ino: number;
  generation: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  /** Directories: the parent directory. */
  parent: number;
  /** Regular files: it has page tables (MAP_DAXVM maps it). */
  tables: boolean;
  /** Directories: its names are loaded (dirNames answers). */
  namesLoaded: boolean;
  /** Regular files: where its blocks are, in file order. */
  extents: ReadonlyArray<{ logical: number; count: number; physical: number }>;
}

/** setxattr flags, as in <sys/xattr.h>. */
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

export interface FileSystemApi {
  // names
  lookup(parent: number, name: string): number;
  /** lookup, but 0 (no error) when `parent` has no such name. */
  find(parent: number, name: string): number;
  /** Resolve an absolute path ("/a/b") to an inode number. */
  resolve(path: string): number;
  readdir(dir: number): DirEntry[];

  // attributes
  getattr(ino: number): Attr;
  chmod(ino: number, mode: number): Attr;
  chown(ino: number, uid: number, gid: number): Attr;
  /** -1 for a time leaves it as is. */
  utimens(ino: number, atimeMs: number, mtimeMs: number): Attr;
  truncate(ino: number, size: number): Attr;

  // creating and removing names
  create(parent: number, name: string, mode: number, owner: Owner, rdev?: number): Attr;
  mkdir(parent: number, name: string, mode: number, owner: Owner): Attr;
  symlink(parent: number, name: string, target: string, owner: Owner): Attr;
  readlink(ino: number): string;
  link(ino: number, parent: number, name: string): Attr;
  unlink(parent: number, name: string): void;
  rmdir(parent: number, name: string): void;
  rename(srcParent: number, srcName: string, dstParent: number, dstName: string): void;

  // data; open() pins the inode (an unlinked file lives until the last release()),
  // not its blocks: truncate and punch free them at once (see BlockLeases)
  open(ino: number): void;
  release(ino: number): void;
  read(ino: number, position: number, dst: Buffer): number;
  write(ino: number, position: number, src: Buffer): number;
  /**
   * fallocate(2), `mode` as <linux/falloc.h>: 0 allocates zeroed blocks for
   * [offset, offset+length) and extends the size, KEEP_SIZE allocates only,
   * PUNCH_HOLE|KEEP_SIZE frees whole blocks and zeroes the partial ones,
   * ZERO_RANGE (optionally with KEEP_SIZE) allocates and zeroes; anything
   * else is EOPNOTSUPP. All or nothing: ENOSPC allocates nothing.
   */
  fallocate(ino: number, mode: number, offset: number, length: number): Attr;
  /**
   * lseek(2)'s SEEK_DATA (3) and SEEK_HOLE (4): the next offset at or after
   * `offset` in data (a mapped block) or in a hole (or the end of the file);
   * ENXIO at or past the end, or when no data follows (SEEK_DATA).
   */
  seekData(ino: number, offset: number, whence: 3 | 4): number;
  /** Make the file's data and metadata (and everything committed before) durable. */
  fsync(ino: number, dataOnly: boolean): void;

  // extended attributes (user.* and trusted.*; others EOPNOTSUPP)
  getxattr(ino: number, name: string): Buffer;
  setxattr(ino: number, name: string, value: Buffer, flags: number): void;
  listxattr(ino: number): string[];
  removexattr(ino: number, name: string): void;

  statfs(): StatFs;

  // DaxVM's knobs, page tables and counters (the mount's `.daxvm/` directory)
  /** Absolute path of the pool file. */
  readonly poolPath: string;
  knobs(): Knobs;
  /** Validates (EINVAL), persists in the superblock, applies (page tables built or deleted). */
  setKnob(name: keyof Knobs, value: number, onProgress?: (done: number) => void): void;
  /** `ino=.. gen=.. seq=.. root=.. level=.. nodes=.. size=..`, after a commit (the pool is current). */
  pptInfo(ino: number): string;
  /** Page-table storage in KiB: in the pool (PMem) and in DRAM. */
  occupancy(): { pmemKB: number; dramKB: number };
  /** Counters: tables built, nodes, huge entries, blocks zeroed... */
  stats(): Record<string, number>;

  // the in-memory state, for an observer (nothing is loaded by these)
  /** Tell `o` about every change from now on (undefined: nobody). */
  observe(o: FsObserver | undefined): void;
  /** The inode if it is in memory (undefined: not loaded, or free). */
  inodeState(ino: number): InodeState | undefined;
  /** A directory's names if they are loaded. */
  dirNames(ino: number): ReadonlyMap<string, { ino: number }> | undefined;
  /** Inodes in memory now. */
  loadedInodes(): number[];

  /** Commit everything to the pool and make it durable. */
  sync(): void;
  /** Sync, mark the pool clean, release it. */
  close(): void;
}
