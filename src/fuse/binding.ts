/**
 * The fuse-native binding, subclassed where its JavaScript glue does not do
 * what we need:
 * - mount options: we pass our own option string to libfuse (use_ino,
 *   big_writes, max_write, subtype, fsname with commas escaped...), which
 *   fuse-native's option builder does not expose;
 * - getattr/readdir: we encode stat ourselves, so nlink 0 (an unlinked open
 *   file) is reported as 0, not 1;
 * - getxattr/listxattr: answer ERANGE when the caller's buffer is too small
 *   (fuse-native would report a length larger than the buffer, and libfuse
 *   would then reply with bytes past its end).
 *
 * - utimens: fuse-native's C glue passes the access time twice, so the
 *   modification time never reaches JavaScript (cp -a, tar and rsync would
 *   set mtime = atime). The value is still in the per-thread struct the C side
 *   keeps in a Buffer we can see (it hands it to the op handler as its first
 *   argument): we read mtime from there, checked against the atime next to it
 *   (see readMtime), and fall back to the access time if the layout ever
 *   differs. Unfixable here: libfuse 2.9 calls utimens only when both times
 *   are set (fuse-native does not set utime_omit_ok), so `touch -m` and
 *   `touch -a` change nothing.
 */
import { createRequire } from 'node:module';
import type { Attr, DirEntry } from '../fs/api.js';

const require = createRequire(import.meta.url);

export type Cb = (err: number) => void;
export type CbV<T> = (err: number, value?: T) => void;
export type CbN = (result: number) => void;

export interface StatfsReply {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/** The operations as fuse-native (and our overrides below) call them. */
export interface DaxOps {
  getattr(path: string, cb: CbV<Attr>): void;
  readdir(path: string, cb: CbV<DirEntry[]>): void;
  readlink(path: string, cb: CbV<string>): void;
  mknod(path: string, mode: number, dev: number, cb: Cb): void;
  mkdir(path: string, mode: number, cb: Cb): void;
  unlink(path: string, cb: Cb): void;
  rmdir(path: string, cb: Cb): void;
  /** fuse-native's argument names: (target of the link, path of the new link). */
  symlink(target: string, path: string, cb: Cb): void;
  rename(src: string, dst: string, cb: Cb): void;
  link(src: string, dst: string, cb: Cb): void;

  chmod(path: string, mode: number, cb: Cb): void;
  chown(path: string, uid: number, gid: number, cb: Cb): void;
  utimens(path: string, atimeMs: number, mtimeMs: number, cb: Cb): void;
  truncate(path: string, size: number, cb: Cb): void;
  statfs(path: string, cb: CbV<StatfsReply>): void;
  getxattr(path: string, name: string, cb: CbV<Buffer>): void;
  setxattr(path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void;
  listxattr(path: string, cb: CbV<string[]>): void;
  removexattr(path: string, name: string, cb: Cb): void;

  open(path: string, flags: number, cb: CbV<number>): void;
  create(path: string, mode: number, cb: CbV<number>): void;
  read(path: string, fh: number, buf: Buffer, len: number, position: number, cb: CbN): void;
  write(path: string, fh: number, buf: Buffer, len: number, position: number, cb: CbN): void;
  release(path: string, fh: number, cb: Cb): void;
  ftruncate(path: string, fh: number, size: number, cb: Cb): void;
  fsync(path: string, datasync: number, fh: number, cb: Cb): void;
  fsyncdir(path: string, datasync: number, fh: number, cb: Cb): void;
}

type Signal = (err: number, ...args: unknown[]) => void;

interface FuseBaseInstance {
  readonly mnt: string;
  mount(cb: (err: Error | null) => void): void;
}
type FuseBaseCtor = new (mnt: string, ops: object, opts: object) => FuseBaseInstance;

const FuseBase = require('@cocalc/fuse-native') as FuseBaseCtor;

const TWO32 = 4294967296;

function put64(a: Uint32Array, i: number, v: number): void {
  const n = v > 0 ? Math.floor(v) : 0;
  a[i] = n % TWO32;
  a[i + 1] = Math.floor(n / TWO32);
}

/** struct stat as fuse-native's C side reads it: 18 uint32 (64-bit values as low, high; times in ms). */
export function statArray(attr?: Partial<Attr>): Uint32Array {
  const a = new Uint32Array(18);
  if (!attr) return a;
  a[0] = attr.mode ?? 0;
  a[1] = attr.uid ?? 0;
  a[2] = attr.gid ?? 0;
  put64(a, 3, attr.size ?? 0);
  a[5] = 0; // st_dev: the kernel fills in the mount's
  a[6] = attr.nlink ?? 0;
  a[7] = attr.ino ?? 0;
  a[8] = attr.rdev ?? 0;
  a[9] = attr.blksize ?? 0;
  put64(a, 10, attr.blocks ?? 0);
  put64(a, 12, attr.atimeMs ?? 0);
  put64(a, 14, attr.mtimeMs ?? 0);
  put64(a, 16, attr.ctimeMs ?? 0);
  return a;
}

const ERANGE = -34;
const ENODATA = -61;

/**
 * Offsets in fuse-native's fuse_thread_locals_t (x86-64/aarch64 LP64):
 * self 0, op 8, op_fn 16, path 24, dest 32, linkname 40, info 48, buf 56,
 * offset 64, len 72, mode 80, dev 88, uid 96, gid 100, atime 104, mtime 112
 * (both size_t, milliseconds).
 */
const LOCALS_ATIME = 104;
const LOCALS_MTIME = 112;

/** The modification time utimens was given, from the C side's struct; undefined if it does not check out. */
export function readMtime(locals: Buffer | undefined, atimeMs: number): number | undefined {
  if (!locals || locals.length < LOCALS_MTIME + 8) return undefined;
  if (Number(locals.readBigUInt64LE(LOCALS_ATIME)) !== atimeMs) return undefined;
  return Number(locals.readBigUInt64LE(LOCALS_MTIME));
}

type NativeHandler = (locals: Buffer, opCode: number, ...args: unknown[]) => unknown;

export class DaxFuse extends FuseBase {
  private readonly optionString: string;
  private readonly daxOps: DaxOps;

  /** @param optionString libfuse options, comma-separated, already escaped (see options.ts). */
  constructor(mnt: string, ops: DaxOps, optionString: string) {
    // timeout:false: an op may take long (a big write, recovery work); never answer ETIMEDOUT.
    super(mnt, ops, { timeout: false });
    this.daxOps = ops;
    this.optionString = optionString;
  }

  _fuseOptions(): string {
    return '-o' + this.optionString;
  }

  /** The C side's per-thread struct of the request being dispatched (see utimens). */
  private currentLocals: Buffer | undefined;

  /** Called by the base constructor: note each request's struct before the base dispatches it. */
  _makeHandlerArray(): NativeHandler[] {
    const base = (FuseBase.prototype as unknown as { _makeHandlerArray(this: unknown): NativeHandler[] })._makeHandlerArray.call(this);
    return base.map(h => (h === undefined ? h : (locals: Buffer, opCode: number, ...args: unknown[]) => {
      this.currentLocals = locals;
      try {
        return h(locals, opCode, ...args);
      } finally {
        this.currentLocals = undefined;
      }
    }));
  }

  _op_utimens(signal: Signal, path: string, aLow: number, aHigh: number, mLow: number, mHigh: number): void {
    const atime = aLow + aHigh * TWO32;
    let mtime = mLow + mHigh * TWO32;
    if (mtime === atime) mtime = readMtime(this.currentLocals, atime) ?? atime;
    this.daxOps.utimens(path, atime, mtime, err => signal(err));
  }

  _op_getattr(signal: Signal, path: string): void {
    this.daxOps.getattr(path, (err, attr) => {
      if (err) return signal(err, statArray());
      return signal(0, statArray(attr));
    });
  }

  _op_readdir(signal: Signal, path: string): void {
    this.daxOps.readdir(path, (err, entries) => {
      if (err || !entries) return signal(err || -5);
      // libfuse's filler takes d_ino (with use_ino) and d_type from these.
      const names = entries.map(e => e.name);
      const stats = entries.map(e => statArray({ ino: e.ino, mode: e.type }));
      return signal(0, names, stats);
    });
  }

  _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer): void {
    this.daxOps.getxattr(path, name, (err, value) => {
      if (err) return signal(err, valueBuf.buffer);
      if (!value) return signal(ENODATA, valueBuf.buffer);
      if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer); // size query
      if (value.length > valueBuf.length) return signal(ERANGE, valueBuf.buffer);
      value.copy(valueBuf);
      return signal(value.length, valueBuf.buffer);
    });
  }

  _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
    this.daxOps.listxattr(path, (err, list) => {
      if (err) return signal(err, listBuf.buffer);
      const encoded = Buffer.concat((list ?? []).map(n => Buffer.from(n + '\0')));
      if (listBuf.length === 0) return signal(encoded.length, listBuf.buffer); // size query
      if (encoded.length > listBuf.length) return signal(ERANGE, listBuf.buffer);
      encoded.copy(listBuf);
      return signal(encoded.length, listBuf.buffer);
    });
  }
}
