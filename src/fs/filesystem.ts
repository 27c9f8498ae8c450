/**
 * The file system as the FUSE layer and the tools see it: FileSystemApi over
 * the shared core, one line per operation; mutations end in afterMutation()
 * so group commit sees them.
 */
import type { Attr, DirEntry, FileSystemApi, FsObserver, InodeState, Owner, StatFs } from './api.js';
import type { FsCore } from './core.js';
import * as attrs from './ops-attrs.js';
import * as data from './ops-data.js';
import * as knobs from './ops-knobs.js';
import * as names from './ops-names.js';
import * as prealloc from './ops-prealloc.js';
import type { KnobName, Knobs } from '../core/format/superblock.js';

export class FileSystem implements FileSystemApi {
  constructor(readonly core: FsCore) {}

  private mutate<T>(op: () => T): T {
    const o = this.core.observer;
    o?.opStart();
    try {
      this.core.reclaimIfLow();
      return op();
    } finally {
      o?.opEnd(); // published before the commit below, and before the daemon answers
      if (!this.core.readOnly) this.core.afterMutation();
    }
  }

  observe(o: FsObserver | undefined): void {
    this.core.observer = o;
  }

  inodeState(ino: number): InodeState | undefined {
    const i = this.core.inodes.cachedInode(ino);
    if (!i) return undefined;
    return {
      ino, generation: i.generation, mode: i.mode, uid: i.uid, gid: i.gid, nlink: i.nlink, size: i.size,
      parent: i.parent, tables: i.pptRoot !== 0, namesLoaded: i.dir !== null, extents: i.extents.items,
    };
  }

  dirNames(ino: number): ReadonlyMap<string, { ino: number }> | undefined {
    return this.core.inodes.cachedInode(ino)?.dir?.entries;
  }

  loadedInodes(): number[] {
    return [...this.core.inodes.cached()].map((i) => i.ino);
  }

  get poolPath(): string {
    return this.core.pool.path;
  }

  get readOnly(): boolean {
    return this.core.readOnly;
  }

  lookup(parent: number, name: string): number { return names.lookup(this.core, parent, name); }
  find(parent: number, name: string): number { return names.find(this.core, parent, name); }
  resolve(path: string): number { return names.resolve(this.core, path); }
  readdir(dir: number): DirEntry[] { return names.readdir(this.core, dir); }

  getattr(ino: number): Attr { return attrs.attrOf(this.core.inode(ino)); }
  chmod(ino: number, mode: number): Attr { return this.mutate(() => attrs.chmod(this.core, ino, mode)); }
  chown(ino: number, uid: number, gid: number): Attr { return this.mutate(() => attrs.chown(this.core, ino, uid, gid)); }
  utimens(ino: number, atimeMs: number, mtimeMs: number): Attr { return this.mutate(() => attrs.utimens(this.core, ino, atimeMs, mtimeMs)); }
  truncate(ino: number, size: number): Attr { return this.mutate(() => attrs.attrOf(data.truncate(this.core, ino, size))); }

  create(parent: number, name: string, mode: number, owner: Owner, rdev?: number): Attr {
    return this.mutate(() => attrs.attrOf(names.create(this.core, parent, name, mode, owner, rdev)));
  }
  mkdir(parent: number, name: string, mode: number, owner: Owner): Attr {
    return this.mutate(() => attrs.attrOf(names.mkdir(this.core, parent, name, mode, owner)));
  }
  symlink(parent: number, name: string, target: string, owner: Owner): Attr {
    return this.mutate(() => attrs.attrOf(names.symlink(this.core, parent, name, target, owner)));
  }
  readlink(ino: number): string { return names.readlink(this.core, ino); }
  link(ino: number, parent: number, name: string): Attr { return this.mutate(() => attrs.attrOf(names.link(this.core, ino, parent, name))); }
  unlink(parent: number, name: string): void { this.mutate(() => names.unlink(this.core, parent, name)); }
  rmdir(parent: number, name: string): void { this.mutate(() => names.rmdir(this.core, parent, name)); }
  rename(srcParent: number, srcName: string, dstParent: number, dstName: string): void {
    this.mutate(() => names.rename(this.core, srcParent, srcName, dstParent, dstName));
  }

  open(ino: number): void { data.open(this.core, ino); }
  release(ino: number): void { this.mutate(() => data.release(this.core, ino)); }
  read(ino: number, position: number, dst: Buffer): number { return this.mutate(() => data.read(this.core, ino, position, dst)); }
  write(ino: number, position: number, src: Buffer): number { return this.mutate(() => data.write(this.core, ino, position, src)); }
  fallocate(ino: number, mode: number, offset: number, length: number): Attr {
    return this.mutate(() => attrs.attrOf(prealloc.fallocate(this.core, ino, mode, offset, length)));
  }
  seekData(ino: number, offset: number, whence: 3 | 4): number { return prealloc.seekData(this.core, ino, offset, whence); }
  fsync(ino: number, _dataOnly: boolean): void { data.fsync(this.core, ino); }

  getxattr(ino: number, name: string): Buffer { return attrs.getxattr(this.core, ino, name); }
  setxattr(ino: number, name: string, value: Buffer, flags: number): void {
    this.mutate(() => attrs.setxattr(this.core, ino, name, value, flags));
  }
  listxattr(ino: number): string[] { return attrs.listxattr(this.core, ino); }
  removexattr(ino: number, name: string): void { this.mutate(() => attrs.removexattr(this.core, ino, name)); }

  // DaxVM's knobs, page tables and counters (the `.daxvm/` directory).
  knobs(): Knobs { return { ...this.core.sb.knobs }; }
  setKnob(name: KnobName, value: number, onProgress?: (done: number) => void): void {
    this.mutate(() => knobs.setKnob(this.core, name, value, onProgress));
  }
  pptInfo(ino: number): string { return knobs.pptInfo(this.core, ino); }
  tableTotals(): knobs.TableTotals { return knobs.tableTotals(this.core); }
  /** Page-table storage: in the pool, and in DRAM (no DRAM mirrors are kept: always 0). */
  occupancy(): { pmemKB: number; dramKB: number } {
    return { pmemKB: this.tableTotals().nodes * 4, dramKB: 0 };
  }
  stats(): Record<string, number> {
    const t = this.tableTotals();
    return {
      ...this.core.stats,
      ...this.core.vouch.stats,
      tableFiles: t.files, tableNodes: t.nodes, hugePmdEntries: t.hugePmd, hugePudEntries: t.hugePud, pteEntries: t.pte,
      freeBlocks: this.core.alloc.freeSoon,
      blocksZeroedBackground: this.core.zeroer.blocksZeroed,
      blocksPrewritten: this.core.prewriter.blocksWritten,
      preZeroedFreeBlocks: this.core.alloc.zeroedFree,
      preZeroQueueBlocks: this.core.alloc.dirtyFree.reduce((n, r) => n + r.count, 0),
      leaseHeldBlocks: this.core.alloc.leaseHeld,
    };
  }

  statfs(): StatFs { return attrs.statfs(this.core); }
  sync(): void { this.core.commit(); }
  close(): void { this.core.close(); }
}
