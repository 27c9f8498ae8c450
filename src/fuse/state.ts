/**
 * What the FUSE layer keeps between requests: the file system, the kernel's
 * lookup counts, open file and directory handles, and the pins that keep an
 * unlinked inode alive while the kernel still knows it.
 *
 * Node ids are inode numbers. Every reply that hands the kernel an inode
 * (lookup, create, mknod, mkdir, symlink, link, a READDIRPLUS entry) counts
 * one lookup; FORGET gives them back. An inode whose last name goes while the
 * kernel still knows it (fstat on an open descriptor, a cwd inside a removed
 * directory) is pinned (fs.open) before the unlink and released at its last
 * FORGET, or at its last close: ext4's life of an unlinked inode, with no
 * hidden names.
 */
import { readFileSync } from 'node:fs';
import { FsError, S_IFDIR, S_IFMT, type Attr, type DirEntry, type FileSystemApi, type Owner } from '../fs/api.js';
import { N, type Io } from './lowlevel.js';

export const S_ISGID = 0o2000;
const S_ISUID = 0o4000;
const S_IXGRP = 0o0010;
/** Node ids from here up are the control directory's (control.ts CONTROL_INO_BASE). */
const CONTROL_INO_MIN = 0xffffff00;

/** Name reserved at the mount root for the control directory (.daxvm/). */
export const CONTROL_DIR = '.daxvm';

export interface OpenFile {
  readonly ino: number;
  /** open(2) flags as the kernel passed them. */
  readonly flags: number;
}

export interface DirHandle {
  readonly ino: number;
  /** The listing this handle reads, taken at its first readdir from offset 0. */
  entries: DirEntry[] | null;
}

/** How long the kernel may keep entries and attributes: every change goes through us, or is told (invalInode). */
export const ENTRY_TIMEOUT_S = 3600;
export const ATTR_TIMEOUT_S = 3600;

export class MountState {
  readonly fs: FileSystemApi;
  readonly readOnly: boolean;
  /**
   * -o no_open: the kernel sends no OPEN and no RELEASE of regular files, so
   * there are no file handles (fh 0): reads and writes go by the node id, and
   * an unlinked file lives on its lookup count alone (the kernel holds the
   * inode, so no FORGET, while any file of it is open). CREATE still returns fh 0.
   */
  readonly noOpen: boolean;
  /** Shared with the C side (or a test's fakeIo); set before the first request. */
  io!: Io;
  /**
   * May a library mapping have stored into the pool behind the kernel's page cache (a client ever took a
   * lease; the daemon sets it from the lease table)? Until then an open for reading keeps the cached pages.
   */
  libraryMayStore: () => boolean = () => true;
  /** The per-opcode request counters (the session's), for .daxvm/stats. */
  requestCounts: () => Record<string, number> = () => ({ total: 0 });
  /** The shared namespace's DRAM copies of page tables (KiB) and its counters (src/fuse/publish). */
  sharedDramKB: () => number = () => 0;
  sharedStats: () => Record<string, number> = () => ({});
  private closed = false;

  private readonly lookups = new Map<number, number>();
  private readonly pins = new Set<number>();
  private readonly handles = new Map<number, OpenFile>();
  private readonly dirs = new Map<number, DirHandle>();
  private nextFh = 1;

  constructor(fs: FileSystemApi, opts: { readOnly?: boolean; noOpen?: boolean } = {}) {
    this.fs = fs;
    this.readOnly = opts.readOnly ?? false;
    this.noOpen = opts.noOpen ?? false;
  }

  /** The file system, or EIO once the daemon has closed it (late requests during shutdown). */
  get live(): FileSystemApi {
    if (this.closed) throw new FsError('EIO', 'file system is shutting down');
    return this.fs;
  }

  // ---- the caller ----------------------------------------------------------

  /** The owner of an inode the caller creates in `parent`: its fsuid, and its fsgid or a setgid parent's group. */
  ownerIn(parent: Attr): Owner {
    const num = this.io.num;
    const gid = parent.mode & S_ISGID ? parent.gid : num[N.CTX_GID]!;
    return { uid: num[N.CTX_UID]!, gid };
  }

  callerUid(): number {
    return this.io.num[N.CTX_UID]!;
  }

  /**
   * Clear setuid, and setgid when the file is group-executable or the
   * caller is not in its group (the VFS's setattr_should_drop_sgid), if the
   * request says so (N.KILL_SUIDGID: with HANDLE_KILLPRIV_V2 the kernel asks
   * this of a write, a truncate or a truncating open by a caller without
   * CAP_FSETID, and of every chown of a non-directory): ext4's rules, ours
   * to apply. True when the mode changed (the kernel's cached attributes are
   * then stale unless the reply carries new ones).
   */
  killSuidgid(ino: number): boolean {
    if (!this.io.num[N.KILL_SUIDGID]) return false;
    const fs = this.live;
    const a = fs.getattr(ino);
    // setgid without group execute stays when the caller is in the file's group or privileged (root stands for CAP_FSETID).
    const sgid = a.mode & S_ISGID && (a.mode & S_IXGRP || !(this.callerUid() === 0 || this.callerInGroup(a.gid)));
    const next = a.mode & ~S_ISUID & ~(sgid ? S_ISGID : 0);
    if (next === a.mode) return false;
    fs.chmod(ino, next & 0o7777);
    return true;
  }

  /** Is `gid` the caller's fsgid or one of its supplementary groups (/proc: rare, only for setgid files)? */
  private callerInGroup(gid: number): boolean {
    if (this.io.num[N.CTX_GID] === gid) return true;
    try {
      const status = readFileSync(`/proc/${this.io.num[N.CTX_PID]}/status`, 'latin1');
      const groups = /^Groups:(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [];
      return groups.includes(String(gid));
    } catch {
      return false; // the caller is gone: as if not in the group
    }
  }

  // ---- replies ---------------------------------------------------------------

  /** Write attributes to the shared slots; `timeout` is the attribute timeout. */
  putAttr(a: Attr, timeout = ATTR_TIMEOUT_S): void {
    const n = this.io.num;
    n[N.INO] = a.ino;
    n[N.GEN] = a.generation;
    n[N.MODE] = a.mode;
    n[N.NLINK] = a.nlink;
    n[N.UID] = a.uid;
    n[N.GID] = a.gid;
    n[N.RDEV] = a.rdev;
    n[N.SIZE] = a.size;
    n[N.BLOCKS] = a.blocks;
    n[N.BLKSIZE] = a.blksize;
    n[N.ATIME] = a.atimeMs;
    n[N.MTIME] = a.mtimeMs;
    n[N.CTIME] = a.ctimeMs;
    n[N.ATTR_TIMEOUT] = timeout;
  }

  /** An entry reply: attributes, timeouts, and one more lookup the kernel now holds. */
  putEntry(a: Attr, attrTimeout = ATTR_TIMEOUT_S, entryTimeout = ENTRY_TIMEOUT_S): void {
    this.putAttr(a, attrTimeout);
    this.io.num[N.ENTRY_TIMEOUT] = entryTimeout;
    this.countLookup(a.ino);
  }

  /** The kernel got one more reference to `ino` (an entry reply). Control nodes are not counted. */
  countLookup(ino: number): void {
    if (ino >= CONTROL_INO_MIN) return;
    this.lookups.set(ino, (this.lookups.get(ino) ?? 0) + 1);
  }

  // ---- lookup counts and pins ------------------------------------------------

  forget(ino: number, n: number): void {
    const left = (this.lookups.get(ino) ?? 0) - n;
    if (left > 0) {
      this.lookups.set(ino, left);
      return;
    }
    this.lookups.delete(ino);
    this.unpin(ino);
  }

  /** Inodes the kernel holds now (for invalidating their attributes). */
  knownInodes(): IterableIterator<number> {
    return this.lookups.keys();
  }

  /**
   * Before removing a name of `ino`: when that is its last name (or it is a
   * directory) and the kernel knows it, pin it so the file system keeps it.
   * Returns an undo for a removal that then fails.
   */
  pinBeforeRemove(ino: number): () => void {
    if (this.pins.has(ino) || !this.lookups.has(ino)) return () => undefined;
    const a = this.live.getattr(ino);
    if ((a.mode & S_IFMT) !== S_IFDIR && a.nlink > 1) return () => undefined;
    this.live.open(ino);
    this.pins.add(ino);
    return () => this.unpin(ino);
  }

  private unpin(ino: number): void {
    if (!this.pins.delete(ino)) return;
    try {
      this.live.release(ino);
    } catch { /* shutting down */ }
  }

  // ---- file and directory handles -------------------------------------------

  private newFh(): number {
    let fh = this.nextFh;
    while (this.handles.has(fh) || this.dirs.has(fh)) fh = fh >= Number.MAX_SAFE_INTEGER ? 1 : fh + 1;
    this.nextFh = fh + 1;
    return fh;
  }

  /** Register an open handle for an inode already pinned with fs.open(). */
  addHandle(ino: number, flags: number): number {
    const fh = this.newFh();
    this.handles.set(fh, { ino, flags });
    return fh;
  }

  handle(fh: number): OpenFile {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', `no file handle ${fh}`);
    return h;
  }

  /** Forget a handle; the caller drops its pin with fs.release(). */
  removeHandle(fh: number): OpenFile {
    const h = this.handle(fh);
    this.handles.delete(fh);
    return h;
  }

  addDir(ino: number): number {
    const fh = this.newFh();
    this.dirs.set(fh, { ino, entries: null });
    return fh;
  }

  dir(fh: number): DirHandle {
    const d = this.dirs.get(fh);
    if (!d) throw new FsError('EBADF', `no directory handle ${fh}`);
    return d;
  }

  removeDir(fh: number): void {
    this.dirs.delete(fh);
  }

  get openHandles(): number {
    return this.handles.size;
  }

  /**
   * Shutdown: drop every pin we hold (open handles, unlinked inodes the kernel
   * knew) so the file system can free unlinked files before it is closed;
   * later requests answer EIO.
   */
  releaseAll(): void {
    const fs = this.fs;
    for (const h of this.handles.values()) {
      try { fs.release(h.ino); } catch { /* closing anyway */ }
    }
    for (const ino of this.pins) {
      try { fs.release(ino); } catch { /* closing anyway */ }
    }
    this.handles.clear();
    this.pins.clear();
    this.dirs.clear();
    this.lookups.clear();
    this.closed = true;
  }
}
