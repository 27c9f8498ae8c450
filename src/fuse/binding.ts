/**
 * The fuse-native binding, subclassed where its JavaScript glue does not do
 * what we need:
 * - mount options: we pass our own option string to libfuse (use_ino,
 *   big_writes, max_write, subtype, fsname with commas escaped...), which
 *   fuse-native's option builder does not expose;
 * - getattr/readdir: we encode stat ourselves, so nlink 0 (an unlinked open
 *   file) is reported as 0, not 1;
 * - fgetattr: as getattr, with the file handle (a `.daxvm/` file reports the
 *   size of that handle's snapshot);
 * - getxattr/listxattr: answer ERANGE when the caller's buffer is too small
 *   (fuse-native would report a length larger than the buffer, and libfuse
 *   would then reply with bytes past its end).
 *
 * It needs our patch of fuse-native's C glue (patches/, applied and built at
 * `npm install` by patch-package and scripts/fuse-native.cjs), checked at load
 * (fuseNativePatched):
 * - libfuse's flag_nullpath_ok: the ops that carry a file handle (read, write,
 *   release, fsync, ftruncate, fgetattr, readdir, fsyncdir) reach us with path
 *   null when libfuse cannot name the file any more (unlinked while open, then
 *   its directory removed); we go by the handle;
 * - flag_utime_omit_ok: utimens comes for one time alone (touch -a, touch -m)
 *   with null for the time to leave as is, and UTIME_NOW as the current time;
 * - utimens passes the modification time (the unpatched glue passed the
 *   access time twice);
 * - names are raw bytes: paths, names, link targets and xattr names come as
 *   latin1 strings (one code unit per byte) and go back the same way
 *   (readdir, readlink; listxattr below), the fs layer's byte strings
 *   (src/fs/bytestr.ts). The unpatched glue decoded them as UTF-8, so every
 *   name that is not valid UTF-8 became U+FFFD and distinct names collided.
 * - fallocate: libfuse 2.9's op, which the unpatched glue does not pass (the
 *   kernel then answers EOPNOTSUPP), with the handle, the mode and 64-bit
 *   offset and length.
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

/**
 * The path of an op that carries a file handle: null when libfuse can no
 * longer name the file (unlinked while open and its directory removed since).
 */
export type FhPath = string | null;

/** The operations as fuse-native (and our overrides below) call them. */
export interface DaxOps {
  getattr(path: string, cb: CbV<Attr>): void;
  /** getattr of an open file (the kernel sent its handle; libfuse's fgetattr). */
  fgetattr(path: FhPath, fh: number, cb: CbV<Attr>): void;
  /** Directories have no handles of ours: null only for a directory removed while open. */
  readdir(path: FhPath, cb: CbV<DirEntry[]>): void;
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
  /** Times in ms since the epoch; null: leave that time as is (touch -a, touch -m). */
  utimens(path: string, atimeMs: number | null, mtimeMs: number | null, cb: Cb): void;
  truncate(path: string, size: number, cb: Cb): void;
  statfs(path: string, cb: CbV<StatfsReply>): void;
  getxattr(path: string, name: string, cb: CbV<Buffer>): void;
  setxattr(path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void;
  listxattr(path: string, cb: CbV<string[]>): void;
  removexattr(path: string, name: string, cb: Cb): void;

  open(path: string, flags: number, cb: CbV<number>): void;
  create(path: string, mode: number, cb: CbV<number>): void;
  read(path: FhPath, fh: number, buf: Buffer, len: number, position: number, cb: CbN): void;
  write(path: FhPath, fh: number, buf: Buffer, len: number, position: number, cb: CbN): void;
  release(path: FhPath, fh: number, cb: Cb): void;
  ftruncate(path: FhPath, fh: number, size: number, cb: Cb): void;
  /** fallocate(2) on an open file: `mode` is FALLOC_FL_* bits. */
  fallocate(path: FhPath, fh: number, mode: number, offset: number, length: number, cb: Cb): void;
  fsync(path: FhPath, datasync: number, fh: number, cb: Cb): void;
  fsyncdir(path: FhPath, datasync: number, fh: number, cb: Cb): void;
}

type Signal = (err: number, ...args: unknown[]) => void;

interface FuseBaseInstance {
  readonly mnt: string;
  mount(cb: (err: Error | null) => void): void;
}
type FuseBaseCtor = new (mnt: string, ops: object, opts: object) => FuseBaseInstance;

const FuseBase = require('@cocalc/fuse-native') as FuseBaseCtor & {
  FEATURE_NULLPATH_UTIME_OMIT?: boolean; FEATURE_RAW_NAMES?: boolean; FEATURE_FALLOCATE?: boolean;
};

/** Whether the fuse-native that loaded is built from our patched source (see the top of this file). */
export const fuseNativePatched: boolean =
  FuseBase.FEATURE_NULLPATH_UTIME_OMIT === true && FuseBase.FEATURE_RAW_NAMES === true && FuseBase.FEATURE_FALLOCATE === true;

export const FUSE_NATIVE_UNPATCHED =
  "@cocalc/fuse-native was not built from daxvm's patched source (patches/): " +
  'without it, files unlinked while open fail once their directory is gone, touch -a/-m do nothing ' +
  'names that are not UTF-8 are mangled and fallocate is not supported; ' +
  'run `npm install` (or `npm run rebuild:fuse-native`) in the daxvm package';

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

export class DaxFuse extends FuseBase {
  private readonly optionString: string;
  private readonly daxOps: DaxOps;

  /** @param optionString libfuse options, comma-separated, already escaped (see options.ts). */
  constructor(mnt: string, ops: DaxOps, optionString: string) {
    // timeout:false: an op may take long (a big write, recovery work); never answer ETIMEDOUT.
    super(mnt, ops, { timeout: false });
    if (!fuseNativePatched) throw new Error(FUSE_NATIVE_UNPATCHED);
    this.daxOps = ops;
    this.optionString = optionString;
  }

  _fuseOptions(): string {
    return '-o' + this.optionString;
  }

  _op_getattr(signal: Signal, path: string): void {
    this.daxOps.getattr(path, (err, attr) => {
      if (err) return signal(err, statArray());
      return signal(0, statArray(attr));
    });
  }

  /** As getattr: we encode stat ourselves (nlink 0 of an unlinked open file stays 0). */
  _op_fgetattr(signal: Signal, path: FhPath, fh: number): void {
    this.daxOps.fgetattr(path, fh, (err, attr) => {
      if (err) return signal(err, statArray());
      return signal(0, statArray(attr));
    });
  }

  _op_readdir(signal: Signal, path: FhPath): void {
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
      const encoded = Buffer.concat((list ?? []).map(n => Buffer.from(n + '\0', 'latin1')));
      if (listBuf.length === 0) return signal(encoded.length, listBuf.buffer); // size query
      if (encoded.length > listBuf.length) return signal(ERANGE, listBuf.buffer);
      encoded.copy(listBuf);
      return signal(encoded.length, listBuf.buffer);
    });
  }
}
