/**
 * Our binding over libfuse3's low-level API (native-shim/fuse/, built as
 * build/Release/daxvm_fuse.node): the contract with its C side, typed.
 *
 * Each op is a plain function of numbers and byte strings (latin1) that
 * returns a number: a negative errno, or 0 / a byte count / an offset. What
 * else a reply carries goes through shared memory, never a per-request
 * object: `num` (attributes, entry and open parameters, and the caller's
 * uid/gid/pid/umask, written by C before each op, and for write, setattr
 * and open whether to clear setuid/setgid), `data` (reply bytes:
 * read, readlink, xattrs) and `recv` (libfuse's receive buffer: write and
 * setxattr data are read from it in place, at the offset C passes).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Slots of `num` (native-shim/fuse/fuse_glue.h, enum num_slot). */
export const N = {
  INO: 0, GEN: 1, MODE: 2, NLINK: 3, UID: 4, GID: 5, RDEV: 6, SIZE: 7, BLOCKS: 8, BLKSIZE: 9,
  ATIME: 10, MTIME: 11, CTIME: 12, ATTR_TIMEOUT: 13, ENTRY_TIMEOUT: 14, FH: 15, OPEN_FLAGS: 16,
  CTX_UID: 20, CTX_GID: 21, CTX_PID: 22, CTX_UMASK: 23,
  /** 1: this write, setattr or open asks us to clear setuid/setgid (HANDLE_KILLPRIV_V2). */
  KILL_SUIDGID: 24,
} as const;
export const NUM_SLOTS = 32;
/** statfs's reply in `num`: bsize, frsize, blocks, bfree, bavail, files, ffree, favail, namemax. */
export const STATFS_SLOTS = 9;

/** OPEN_FLAGS bits. */
export const OPEN_DIRECT_IO = 1;
export const OPEN_KEEP_CACHE = 2;
export const OPEN_CACHE_DIR = 4;

/** FUSE_SET_ATTR_* (fuse_lowlevel.h): setattr's `valid`. */
export const SET = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, CTIME: 1 << 10,
} as const;

/** Kernel opcode numbers (linux/fuse.h) -> names, for the per-opcode counters. */
export const OPCODE_NAMES: Readonly<Record<number, string>> = {
  1: 'LOOKUP', 2: 'FORGET', 3: 'GETATTR', 4: 'SETATTR', 5: 'READLINK', 6: 'SYMLINK', 8: 'MKNOD',
  9: 'MKDIR', 10: 'UNLINK', 11: 'RMDIR', 12: 'RENAME', 13: 'LINK', 14: 'OPEN', 15: 'READ',
  16: 'WRITE', 17: 'STATFS', 18: 'RELEASE', 20: 'FSYNC', 21: 'SETXATTR', 22: 'GETXATTR',
  23: 'LISTXATTR', 24: 'REMOVEXATTR', 25: 'FLUSH', 26: 'INIT', 27: 'OPENDIR', 28: 'READDIR',
  29: 'RELEASEDIR', 30: 'FSYNCDIR', 31: 'GETLK', 32: 'SETLK', 33: 'SETLKW', 34: 'ACCESS',
  35: 'CREATE', 36: 'INTERRUPT', 37: 'BMAP', 38: 'DESTROY', 39: 'IOCTL', 40: 'POLL',
  41: 'NOTIFY_REPLY', 42: 'BATCH_FORGET', 43: 'FALLOCATE', 44: 'READDIRPLUS', 45: 'RENAME2',
  46: 'LSEEK', 47: 'COPY_FILE_RANGE', 48: 'SETUPMAPPING', 49: 'REMOVEMAPPING', 50: 'SYNCFS',
  51: 'TMPFILE', 52: 'STATX',
};

/** The ops, as C calls them (all optional: a missing one answers ENOSYS). */
export interface LowLevelOps {
  lookup?(parent: number, name: string): number;
  forget?(ino: number, nlookup: number): number;
  getattr?(ino: number, fh: number): number;
  setattr?(ino: number, fh: number, valid: number, mode: number, uid: number, gid: number,
    size: number, atimeMs: number, mtimeMs: number): number;
  readlink?(ino: number): number;
  mknod?(parent: number, name: string, mode: number, rdev: number): number;
  mkdir?(parent: number, name: string, mode: number): number;
  unlink?(parent: number, name: string): number;
  rmdir?(parent: number, name: string): number;
  symlink?(parent: number, name: string, target: string): number;
  rename?(parent: number, name: string, newParent: number, newName: string, flags: number): number;
  link?(ino: number, newParent: number, newName: string): number;
  open?(ino: number, flags: number): number;
  read?(ino: number, fh: number, offset: number, size: number): number;
  /** `flags`: the writer's open(2) flags as the kernel sends them with each WRITE. */
  write?(ino: number, fh: number, offset: number, size: number, at: number, flags?: number): number;
  release?(ino: number, fh: number, flags: number): number;
  fsync?(ino: number, fh: number, datasync: number): number;
  opendir?(ino: number, flags: number): number;
  readdir?(ino: number, fh: number, offset: number, plus: number): number;
  releasedir?(ino: number, fh: number): number;
  fsyncdir?(ino: number, fh: number, datasync: number): number;
  statfs?(ino: number): number;
  setxattr?(ino: number, name: string, at: number, size: number, flags: number): number;
  getxattr?(ino: number, name: string, size: number): number;
  listxattr?(ino: number, size: number): number;
  removexattr?(ino: number, name: string): number;
  create?(parent: number, name: string, mode: number, flags: number): number;
  fallocate?(ino: number, fh: number, mode: number, offset: number, length: number): number;
  lseek?(ino: number, fh: number, offset: number, whence: number): number;
}

/** What the ops read and write besides their arguments; a test can make its own (fakeIo). */
export interface Io {
  num: Float64Array;
  data: Buffer;
  recv: Buffer;
  /** Add a readdir entry (ino, mode, and for plus the whole entry, are in num); false: the reply is full. */
  dirAdd(name: string, nextOffset: number): boolean;
  /** Drop the kernel's cached attributes of an inode (changed behind its back). */
  invalInode(ino: number): void;
}

interface Buffers { num: Float64Array; data: Uint8Array; recv: Uint8Array; counts: Float64Array }
type SessionHandle = { readonly __session: unique symbol };
interface Addon {
  mount(mnt: string, options: string, handlers: object, config: { negTimeout: number; maxWrite: number; noOpen: number }): SessionHandle;
  buffers(s: SessionHandle): Buffers;
  dirAdd(s: SessionHandle, name: string, off: number): boolean;
  invalInode(s: SessionHandle, ino: number): number;
  close(s: SessionHandle, unmount: boolean): void;
  NUM_SLOTS: number;
  LIBFUSE_VERSION: string;
}

let addon: Addon | undefined;
function load(): Addon {
  if (!addon) {
    const path = fileURLToPath(new URL('../../build/Release/daxvm_fuse.node', import.meta.url));
    addon = createRequire(import.meta.url)(path) as Addon;
    if (addon.NUM_SLOTS !== NUM_SLOTS) throw new Error(`daxvm_fuse.node has ${addon.NUM_SLOTS} slots, expected ${NUM_SLOTS}: rebuild it`);
  }
  return addon;
}

/** The version of the libfuse the binding loaded (fuse_pkgversion()), e.g. "3.14.0". Throws when the binding is not built. */
export function libfuseVersion(): string {
  return load().LIBFUSE_VERSION;
}

function asBuffer(a: Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** An Io over plain memory, for driving the ops without a kernel (tests). */
export function fakeIo(onEntry: (name: string, nextOffset: number) => boolean = () => true): Io {
  return {
    num: new Float64Array(NUM_SLOTS),
    data: Buffer.alloc(256 * 4096 + 65536),
    recv: Buffer.alloc(256 * 4096 + 4096),
    dirAdd: onEntry,
    invalInode: () => undefined,
  };
}

export interface SessionConfig {
  /** Seconds the kernel may remember that a name does not exist (0: never). */
  negTimeout: number;
  /** Largest WRITE the kernel sends, in bytes. */
  maxWrite: number;
  /**
   * -o no_open: answer OPEN with ENOSYS, so the kernel opens regular files
   * without asking (no OPEN, no RELEASE) and keeps their cached pages
   * (src/fuse/README.md says what that costs). atomic_o_trunc goes off with it.
   */
  noOpen?: boolean;
  /** The mount is gone (ENODEV) or reading /dev/fuse failed: `reason` says which. */
  onEnd(reason: string): void;
  /** An op threw (a bug: it was answered EIO). */
  onError(err: unknown): void;
}

/** A mounted session: requests are served on this thread from now until close(). */
export class FuseSession {
  readonly io: Io;
  private readonly counts: Float64Array;
  private closed = false;

  private constructor(private readonly a: Addon, private readonly handle: SessionHandle) {
    const b = a.buffers(handle);
    this.counts = b.counts;
    this.io = {
      num: b.num,
      data: asBuffer(b.data),
      recv: asBuffer(b.recv),
      dirAdd: (name, off) => a.dirAdd(handle, name, off),
      invalInode: (ino) => { a.invalInode(handle, ino); },
    };
  }

  /**
   * Mount `ops` on `mnt` with libfuse options `options` (comma-separated,
   * escaped). `bindIo` is called with the shared buffers before any request is served.
   */
  static mount(mnt: string, options: string, ops: LowLevelOps, bindIo: (io: Io) => void, cfg: SessionConfig): FuseSession {
    const a = load();
    const handlers = { ...bindMethods(ops), end: cfg.onEnd, error: cfg.onError };
    const h = a.mount(mnt, options, handlers, { negTimeout: cfg.negTimeout, maxWrite: cfg.maxWrite, noOpen: cfg.noOpen ? 1 : 0 });
    const s = new FuseSession(a, h);
    bindIo(s.io);
    return s;
  }

  /** Requests received so far, by kernel opcode name, and their total. */
  requestCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    let total = 0;
    for (let i = 0; i < this.counts.length; i++) {
      const n = this.counts[i]!;
      if (n === 0) continue;
      out[OPCODE_NAMES[i] ?? `OP${i}`] = n;
      total += n;
    }
    out.total = total;
    return out;
  }

  /** Stop serving, unmount (lazily; `unmount` false: the caller did) and close /dev/fuse. */
  close(unmount = true): void {
    if (this.closed) return;
    this.closed = true;
    this.a.close(this.handle, unmount);
  }
}

/** The op functions of an object (its own and its prototype's), bound to it. */
function bindMethods(ops: LowLevelOps): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ops)) if (typeof v === 'function') out[k] = (v as (...a: unknown[]) => unknown).bind(ops);
  return out;
}
