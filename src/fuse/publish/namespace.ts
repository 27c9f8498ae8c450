/**
 * The namespace publisher (docs/format.md, "The namespace"): it hears every
 * change of the file system's in-memory state (FsObserver) and keeps the
 * shared region in step: names (parent, name) -> inode, and per inode its
 * attributes and extents (the DRAM copy of its page table). Changes made
 * inside an operation are written at its end, before the daemon answers;
 * loads outside any operation (a lookup) at once. Each record is written
 * under its sequence word, so a reader never takes half of one.
 *
 * A name entry's directory gets a new sequence word with every name it
 * gains or loses, so a reader that found no entry and sees its directory's
 * word unchanged knows the name does not exist (when the directory's names
 * are all published: NS_INODE_NAMES).
 */
import createDebug from 'debug';
import type { FileSystemApi, FsObserver } from '../../fs/api.js';
import { NS_GRANULE, NS_INODE_EXTENTS, NS_INODE_NAMES, NS_INODE_TABLES, nsHash } from '../../core/format/namespace.js';
import { S_IFDIR, S_IFMT, S_IFREG } from '../../core/format/mode.js';
import { NsRegion, type MountFacts } from './ns-region.js';
import type { PoolIdentity } from './lease-table.js';

const log = createDebug('daxvm:fuse');

/** Extents of one file at most in the region (more: the file is resolved through the mount). */
const MAX_EXTENTS = 1 << 16;
const EXTENT_GRANULES = 16 / NS_GRANULE;

interface Published {
  /** Heap granule of its extents (0: none) and how many it has room for. */
  extents: number;
  room: number;
  count: number;
  /** Whether the file has page tables (only their copies count as the tables' DRAM). */
  tables: boolean;
}

type NameEvent = { add: true; parent: number; name: string; ino: number } | { add: false; parent: number; name: string };

export class NsPublisher implements FsObserver {
  private depth = 0;
  private readonly dirty = new Set<number>();
  private names: NameEvent[] = [];
  /** Name entries by `${parent}/${name}` (names are latin1 byte strings). */
  private readonly entries = new Map<string, number>();
  /** Directories whose names are all published. */
  private readonly complete = new Set<number>();
  private readonly published = new Map<number, Published>();
  /** Bytes of extents published (the DRAM copy of the page tables) and of files with them. */
  private extentBytes = 0;
  /** The part of extentBytes that copies page tables (files without tables are published for the walk only). */
  private tableExtentBytes = 0;
  full = 0;

  private constructor(readonly region: NsRegion, private readonly fs: FileSystemApi) {}

  /** Make the region and publish what the file system has loaded; live from then on. */
  static start(pool: PoolIdentity, fs: FileSystemApi, inodeCount: number, mount: MountFacts): NsPublisher {
    const p = new NsPublisher(NsRegion.create(pool, inodeCount, mount), fs);
    for (const ino of fs.loadedInodes()) p.publishInode(ino);
    fs.observe(p);
    p.region.setLive(true);
    log('namespace %s: %d inode records, %d name entries', p.region.path, p.region.inodeCount, p.region.nameCount);
    return p;
  }

  /** DRAM taken by the page tables' copies (extents and the records of files that have them), in KiB. */
  dramKB(): number {
    return Math.ceil(this.tableExtentBytes / 1024);
  }

  stats(): Record<string, number> {
    return {
      nsNames: this.region.namesUsed, nsHeapBytes: this.region.heap.used * NS_GRANULE, nsFiles: this.published.size,
      nsExtentBytes: this.extentBytes, nsFull: this.full, nsHostFull: this.region.heap.hostFull,
    };
  }

  private closed = false;

  /** At exit: readers stop using the region (a no-op once closed). */
  markDead(): void {
    if (!this.closed) this.region.setLive(false);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fs.observe(undefined);
    this.region.close();
  }

  // ---- FsObserver --------------------------------------------------------------

  inodeChanged(ino: number): void {
    if (this.depth > 0) this.dirty.add(ino);
    else this.publishInode(ino);
  }

  inodeFreed(ino: number): void {
    this.inodeChanged(ino); // published as what inodeState says then: nothing
  }

  dirLoaded(ino: number): void {
    this.inodeChanged(ino); // its names are published with its record
  }

  nameAdded(parent: number, name: string, ino: number): void {
    this.names.push({ add: true, parent, name, ino });
    this.dirty.add(parent);
    if (this.depth === 0) this.flush();
  }

  nameRemoved(parent: number, name: string): void {
    this.names.push({ add: false, parent, name });
    this.dirty.add(parent);
    if (this.depth === 0) this.flush();
  }

  opStart(): void {
    this.depth++;
  }

  opEnd(): void {
    if (--this.depth === 0) this.flush();
  }

  /** Publish what the current operation changed (also before a lease scan made outside an operation). */
  flush(): void {
    if (this.depth > 0) return;
    // Most operations (setattr, write) change one inode and no name: no array taken, nothing allocated.
    if (this.names.length) {
      const names = this.names;
      this.names = [];
      for (const e of names) {
        if (e.add) this.addName(e.parent, e.name, e.ino);
        else this.removeName(e.parent, e.name);
      }
    }
    if (this.dirty.size === 0) return;
    for (const ino of this.dirty) this.publishInode(ino);
    this.dirty.clear();
  }

  // ---- writing -------------------------------------------------------------------

  private addName(parent: number, name: string, ino: number): void {
    const key = `${parent}/${name}`;
    const n = this.entries.get(key);
    if (n !== undefined) {
      this.region.repoint(n, ino);
      return;
    }
    const bytes = Buffer.from(name, 'latin1');
    const at = this.region.addName(parent, bytes, nsHash(parent, bytes), ino);
    if (at < 0) {
      this.full++;
      this.complete.delete(parent); // a name of it is missing: its misses mean nothing now
      this.dirty.add(parent);
      return;
    }
    this.entries.set(key, at);
  }

  private removeName(parent: number, name: string): void {
    const key = `${parent}/${name}`;
    const n = this.entries.get(key);
    if (n === undefined) return;
    this.entries.delete(key);
    this.region.removeName(n, name.length);
  }

  /** Publish every name of a loaded directory not published yet; complete when all are there. */
  private publishDir(ino: number): void {
    const names = this.fs.dirNames(ino);
    if (!names) return;
    let ok = true;
    for (const [name, e] of names) {
      if (this.entries.has(`${ino}/${name}`)) continue;
      this.addName(ino, name, e.ino);
      if (!this.entries.has(`${ino}/${name}`)) ok = false;
    }
    if (ok) this.complete.add(ino);
  }

  private publishInode(ino: number): void {
    const s = this.fs.inodeState(ino);
    const old = this.published.get(ino);
    if (!s) {
      this.region.writeInode(ino, null);
      if (old) this.drop(ino, old);
      this.complete.delete(ino);
      return;
    }
    const type = s.mode & S_IFMT;
    if (type === S_IFDIR && !this.complete.has(ino) && s.namesLoaded) this.publishDir(ino); // made by mkdir, or loaded
    let flags = type === S_IFDIR && this.complete.has(ino) ? NS_INODE_NAMES : 0;
    let extents = 0;
    let count = 0;
    let move: (() => void) | undefined;
    let freeOld: Published | undefined;
    if (type === S_IFREG) {
      if (s.tables) flags |= NS_INODE_TABLES;
      count = s.extents.length;
      let room = old?.room ?? 0;
      extents = old?.extents ?? 0;
      if (count <= MAX_EXTENTS && (count <= room || count === 0)) {
        flags |= NS_INODE_EXTENTS;
      } else if (count <= MAX_EXTENTS) {
        const want = 2 ** Math.ceil(Math.log2(count));
        const at = this.region.heap.alloc(want * EXTENT_GRANULES);
        if (at) {
          if (old) freeOld = old;
          extents = at;
          room = want;
          flags |= NS_INODE_EXTENTS;
        } else this.full++;
      }
      if (flags & NS_INODE_EXTENTS) {
        const list = s.extents;
        const at = extents;
        move = () => this.region.writeExtents(at, list);
        if (old) this.unaccount(old);
        this.extentBytes += count * 16;
        if (s.tables) this.tableExtentBytes += count * 16;
        this.published.set(ino, { extents, room, count, tables: s.tables });
      } else {
        if (old) {
          freeOld = old;
          this.unaccount(old);
          this.published.delete(ino);
        }
        extents = 0;
        count = 0;
      }
    }
    this.region.writeInode(ino, {
      generation: s.generation, mode: s.mode, uid: s.uid, gid: s.gid, nlink: s.nlink, size: s.size,
      parent: s.parent, flags, extents, extentCount: count,
    }, move);
    // After the record stopped pointing at them: a reader still on them sees the sequence word moved.
    if (freeOld && freeOld.extents !== extents) this.region.heap.release(freeOld.extents, freeOld.room * EXTENT_GRANULES);
  }

  private unaccount(old: Published): void {
    this.extentBytes -= old.count * 16;
    if (old.tables) this.tableExtentBytes -= old.count * 16;
  }

  private drop(ino: number, old: Published): void {
    this.published.delete(ino);
    this.unaccount(old);
    this.region.heap.release(old.extents, old.room * EXTENT_GRANULES);
  }
}
