/**
 * What the FUSE layer keeps between operations: the file system, the table of
 * open file handles, and the names of open files that were unlinked.
 *
 * Unlinked open files. libfuse 2.9 renames a file that is unlinked while open
 * to `.fuse_hidden%08x%08x` in the same directory, and unlinks that name at
 * the last release. We give ext4 semantics on top: the rename to a hidden name
 * really unlinks the file (it vanishes from its directory, nlink drops, rmdir
 * of the directory works) and pins its inode; the hidden name lives only here
 * and resolves to the inode from any directory; its unlink, or the last
 * release, drops the pin, so the blocks are freed at the last close.
 *
 * Why not `-o hard_remove` (unlink for real, no hidden name): libfuse then
 * has no path for the file at once, and fstat(2) on it fails with ENOENT (the
 * kernel sends fstat's getattr without the file handle, and libfuse needs a
 * path for that); so do fchmod, fchown, futimens and fgetxattr. With the
 * hidden name they work as long as the directory exists. Once it is removed
 * too, libfuse passes the ops that carry a handle (read, write, fsync,
 * ftruncate, release...) with path null (fuse-native patched for
 * flag_nullpath_ok) and we go by the handle (inoOf).
 */
import { FsError, ROOT_INO, type FileSystemApi, type Owner } from '../fs/api.js';

export const HIDDEN_NAME = /^\.fuse_hidden[0-9a-f]{16}$/;

/** Name reserved at the mount root for the control directory (.daxvm/). */
export const CONTROL_DIR = '.daxvm';

export interface OpenFile {
  readonly ino: number;
  /** open(2) flags as the kernel passed them (create: O_RDWR assumed). */
  readonly flags: number;
}

const MAX_FH = 0xffffffff; // fuse-native passes file handles as uint32; 0 means "none"

export class MountState {
  readonly fs: FileSystemApi;
  readonly readOnly: boolean;
  /**
   * Owner of new files and directories. Known limitation: fuse-native does not
   * expose fuse_get_context(), so we cannot learn the caller's uid/gid; new
   * inodes belong to the daemon's user (as with a FUSE fs mounted without
   * default ownership mapping). With allow_other, chown afterwards if needed.
   */
  readonly owner: Owner;
  private closed = false;

  private readonly handles = new Map<number, OpenFile>();
  private readonly openCount = new Map<number, number>();
  private nextFh = 1;
  private readonly hidden = new Map<string, number>();

  constructor(fs: FileSystemApi, opts: { readOnly?: boolean; owner?: Owner } = {}) {
    this.fs = fs;
    this.readOnly = opts.readOnly ?? false;
    this.owner = opts.owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  }

  /** The file system, or EIO once the daemon has closed it (late requests during shutdown). */
  get live(): FileSystemApi {
    if (this.closed) throw new FsError('EIO', 'file system is shutting down');
    return this.fs;
  }

  // ---- paths ---------------------------------------------------------------

  /** Inode of a path from FUSE; hidden names resolve through the map, from any directory. */
  resolve(path: string): number {
    if (path === '/') return ROOT_INO;
    const base = path.slice(path.lastIndexOf('/') + 1);
    if (HIDDEN_NAME.test(base)) {
      const ino = this.hidden.get(base);
      if (ino !== undefined) return ino;
    }
    return this.live.resolve(path);
  }

  /** Parent inode and last component of a path (for creating and removing names). */
  split(path: string): { parent: number; name: string } {
    const slash = path.lastIndexOf('/');
    if (slash < 0 || path === '/') throw new FsError('EINVAL', `no parent for ${path}`);
    const dir = slash === 0 ? '/' : path.slice(0, slash);
    return { parent: this.live.resolve(dir), name: path.slice(slash + 1) };
  }

  // ---- file handles --------------------------------------------------------

  /** Register an open handle for an inode already pinned with fs.open(). */
  addHandle(ino: number, flags: number): number {
    let fh = this.nextFh;
    while (this.handles.has(fh)) fh = fh >= MAX_FH ? 1 : fh + 1;
    this.nextFh = fh >= MAX_FH ? 1 : fh + 1;
    this.handles.set(fh, { ino, flags });
    this.openCount.set(ino, (this.openCount.get(ino) ?? 0) + 1);
    return fh;
  }

  /**
   * The inode of an op that may carry a file handle: the handle's when there is
   * one (fh 0: none), else the path's. Path null (libfuse could not name the
   * file) without a handle cannot happen; EBADF if it does.
   */
  inoOf(path: string | null, fh: number): number {
    if (fh) return this.handle(fh).ino;
    if (path === null) throw new FsError('EBADF', 'neither a path nor a file handle');
    return this.resolve(path);
  }

  handle(fh: number): OpenFile {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', `no file handle ${fh}`);
    return h;
  }

  /** Forget a handle; the caller drops the pin with fs.release(). */
  removeHandle(fh: number): OpenFile {
    const h = this.handle(fh);
    this.handles.delete(fh);
    const n = (this.openCount.get(h.ino) ?? 1) - 1;
    if (n > 0) this.openCount.set(h.ino, n);
    else this.openCount.delete(h.ino);
    return h;
  }

  isOpen(ino: number): boolean {
    return this.openCount.has(ino);
  }

  get openHandles(): number {
    return this.handles.size;
  }

  // ---- hidden (unlinked but open) files ------------------------------------

  isHidden(name: string): boolean {
    return HIDDEN_NAME.test(name) && this.hidden.has(name);
  }

  hide(name: string, ino: number): void {
    this.hidden.set(name, ino);
  }

  /** Forget a hidden name; returns its inode (whose pin the caller releases). */
  unhide(name: string): number | undefined {
    const ino = this.hidden.get(name);
    this.hidden.delete(name);
    return ino;
  }

  /** The hidden name of an inode, if it is an unlinked open file. */
  hiddenNameOf(ino: number): string | undefined {
    for (const [name, i] of this.hidden) if (i === ino) return name;
    return undefined;
  }

  get hiddenCount(): number {
    return this.hidden.size;
  }

  /**
   * Shutdown: drop every pin we hold (open handles and hidden files) so the
   * file system can free unlinked files before it is closed; later requests
   * answer EIO.
   */
  releaseAll(): void {
    const fs = this.fs;
    for (const h of this.handles.values()) {
      try { fs.release(h.ino); } catch { /* closing anyway */ }
    }
    for (const ino of this.hidden.values()) {
      try { fs.release(ino); } catch { /* closing anyway */ }
    }
    this.handles.clear();
    this.openCount.clear();
    this.hidden.clear();
    this.closed = true;
  }
}
