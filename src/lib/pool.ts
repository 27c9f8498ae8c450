/**
 * The process's access to a pool, read-only except through mappings: the
 * three views (mapped once per process by the native shim and shared by all
 * worker threads), the superblock (geometry, knobs) and the lock-free read
 * of a file's inode and page table (docs/format.md, "Readers in other
 * processes": the inode's sequence word is read before and after, and the
 * read is retried when it was odd or changed).
 */
import fs from 'node:fs';
import {
  INODE_GENERATION as INO_GEN, INODE_MODE as INO_MODE, INODE_PPT_LEVEL as INO_PPT_LEVEL, INODE_PPT_ROOT as INO_PPT_ROOT,
  INODE_SEQ as INO_SEQ, INODE_SIZE_BYTES as INO_SIZE,
} from '../core/format/inode.js';
import { S_IFMT, S_IFREG } from '../core/format/mode.js';
import { BLOCK_SIZE, INODE_SIZE, INODES_PER_BLOCK, type Geometry } from '../core/format/pool.js';
import { blocksPerEntry, ENTRIES_PER_NODE, readEntry } from '../core/format/ppt.js';
import { decodeSuperblock, SB_MSYNC as SB_KNOB_MSYNC, SB_ZOMBIE_MAX_PAGES as SB_KNOB_ZOMBIE_MAX_PAGES } from '../core/format/superblock.js';
import { native, type PoolView, type PoolViewKind } from './native.js';
import { DaxvmError } from './errors.js';


const WINDOW = 2 ** 30;
const SEQLOCK_TRIES = 200;

/** `count` blocks of the file from `logical` live at pool block `physical` onward. */
export interface Run {
  logical: number;
  physical: number;
  count: number;
}

export interface TableRead {
  /** Runs covering the blocks asked, merged where the pool is contiguous, in file order. */
  runs: Run[];
  /** Blocks of the range no entry maps (holes, or past the end). */
  holes: number;
  /** Leaves taken: 4 KiB PTE entries, 2 MiB and 1 GiB huge entries. */
  leaves: { pte: number; pmd: number; pud: number };
  /** The inode's size and sequence word when read. */
  size: number;
  seq: number;
}

export type TableResult = TableRead | { problem: string };

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** A synchronous pause (the daemon, another process, is writing the inode home). */
function pause(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function u64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * 2 ** 32;
}

export class PoolAccess {
  private static readonly byFile = new Map<string, PoolAccess>();
  readonly path: string;
  readonly ro: PoolView;
  readonly geometry: Geometry;
  private readonly windows: Buffer[] = [];
  private readonly views = new Map<PoolViewKind, PoolView | DaxvmError>();
  /** A descriptor of our own for the lock probe (served()); opened on first use, kept for the process's life. */
  private lockFd: number | undefined;

  private constructor(poolPath: string) {
    this.path = poolPath;
    this.ro = native.poolView(poolPath, 'ro');
    this.views.set('ro', this.ro);
    const decoded = decodeSuperblock(this.bytes(0, BLOCK_SIZE));
    if (!decoded.ok) throw new DaxvmError({ code: 'EINVAL', path: poolPath }, `not a usable daxvm pool: ${decoded.detail}`);
    this.geometry = decoded.sb.geometry;
  }

  /**
   * The pool file at this path, opened read-only on first use (throws
   * EACCES, ENOENT... when it cannot be). Cached by path and checked by
   * device and inode: a pool made anew at the same path is a new pool.
   */
  static get(poolPath: string): PoolAccess {
    const st = fs.statSync(poolPath);
    const key = `${st.dev}:${st.ino}:${poolPath}`;
    let p = PoolAccess.byFile.get(key);
    if (!p) {
      p = new PoolAccess(poolPath);
      PoolAccess.byFile.set(key, p);
    }
    return p;
  }

  /**
   * Is the pool still served: does a daemon (the one whose mount the
   * mappings came from, or one mounted since, which adopted the lease
   * table) hold its lock? False once the daemon closed the pool or died.
   * One or two system calls (a non-blocking flock probe, nothing kept).
   */
  served(): boolean {
    this.lockFd ??= fs.openSync(this.path, 'r');
    return native.lockHeld(this.lockFd);
  }

  /** A read-write view, tracked or not; the error (EACCES...) is remembered. */
  view(kind: PoolViewKind): PoolView {
    let v = this.views.get(kind);
    if (!v) {
      try {
        v = native.poolView(this.path, kind);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        v = new DaxvmError({ code: e.code ?? 'EIO', syscall: e.syscall ?? 'open', path: this.path }, e.message);
      }
      this.views.set(kind, v);
    }
    if (v instanceof DaxvmError) throw v;
    return v;
  }

  /** A Buffer over [offset, +length) of the read-only view (no copy; within one 1 GiB window). */
  bytes(offset: number, length: number): Buffer {
    const i = Math.floor(offset / WINDOW);
    let w = this.windows[i];
    if (!w) {
      w = Buffer.from(native.view(this.ro.handle, i * WINDOW, Math.min(WINDOW, this.ro.size - i * WINDOW)));
      this.windows[i] = w;
    }
    const at = offset - i * WINDOW;
    if (at + length > w.length) throw new DaxvmError({ code: 'EIO', path: this.path }, `pool read at ${offset} crosses a window`);
    return w.subarray(at, at + length);
  }

  knobs(): { msync: number; zombieMaxPages: number } {
    const sb = this.bytes(0, BLOCK_SIZE);
    return { msync: sb.readUInt32LE(SB_KNOB_MSYNC), zombieMaxPages: sb.readUInt32LE(SB_KNOB_ZOMBIE_MAX_PAGES) };
  }

  private inode(ino: number): Buffer {
    const g = this.geometry;
    if (ino < 1 || ino >= g.inodeCount) throw new DaxvmError({ code: 'EIO', path: this.path }, `inode ${ino} outside the inode table`);
    const block = g.inodeTableStart + Math.floor(ino / INODES_PER_BLOCK);
    return this.bytes(block * BLOCK_SIZE + (ino % INODES_PER_BLOCK) * INODE_SIZE, INODE_SIZE);
  }

  /**
   * The runs mapping logical blocks [first, end) of inode `ino` (generation
   * `gen`), read from its page table without any lock: retried while the
   * daemon is changing the inode. A problem (a different file in the slot, no
   * table, a table that never held still) is reported, not thrown.
   */
  readTable(ino: number, gen: number, first: number, end: number): TableResult {
    const rec = this.inode(ino);
    for (let attempt = 0; attempt < SEQLOCK_TRIES; attempt++) {
      if (attempt > 0 && attempt % 20 === 0) pause(1);
      const seq = rec.readUInt32LE(INO_SEQ);
      if (seq % 2 === 1) continue;
      let result: TableResult;
      try {
        result = this.readStable(rec, gen, first, end);
      } catch (err) {
        result = { problem: `unreadable table: ${(err as Error).message}` };
      }
      if (rec.readUInt32LE(INO_SEQ) !== seq) continue; // changed under us: read again
      if ('runs' in result) result.seq = seq;
      return result;
    }
    return { problem: 'the table kept changing while being read' };
  }

  /** Is inode `ino`'s sequence word still `seq` (its table unchanged since it was read)? */
  unchanged(ino: number, seq: number): boolean {
    return this.inode(ino).readUInt32LE(INO_SEQ) === seq;
  }

  private readStable(rec: Buffer, gen: number, first: number, end: number): TableResult {
    if ((rec.readUInt32LE(INO_MODE) & S_IFMT) !== S_IFREG) return { problem: 'the inode is not a regular file any more' };
    if (rec.readUInt32LE(INO_GEN) !== gen) return { problem: 'the inode was reused (generation changed)' };
    const root = u64(rec, INO_PPT_ROOT);
    const level = rec.readUInt32LE(INO_PPT_LEVEL);
    const size = u64(rec, INO_SIZE);
    if (!root || level < 1 || level > 4) return { problem: 'the file has no page table' };
    const g = this.geometry;
    const checkBlock = (b: number): void => {
      if (b < g.dataStart || b >= g.totalBlocks) throw new Error(`block ${b} outside the data area`);
    };
    const runs: Run[] = [];
    const leaves = { pte: 0, pmd: 0, pud: 0 };
    const leaf = (logical: number, physical: number, count: number, lvl: number): void => {
      const from = Math.max(first, logical);
      const to = Math.min(end, logical + count);
      if (to <= from) return;
      checkBlock(physical);
      checkBlock(physical + count - 1);
      if (lvl === 1) leaves.pte++;
      else if (lvl === 2) leaves.pmd++;
      else leaves.pud++;
      const phys = physical + (from - logical);
      const last = runs[runs.length - 1];
      if (last && last.logical + last.count === from && last.physical + last.count === phys) last.count += to - from;
      else runs.push({ logical: from, physical: phys, count: to - from });
    };
    const visit = (block: number, lvl: number, base: number): void => {
      checkBlock(block);
      const node = this.bytes(block * BLOCK_SIZE, BLOCK_SIZE);
      const span = blocksPerEntry(lvl);
      const i0 = Math.max(0, Math.floor((first - base) / span));
      const i1 = Math.min(ENTRIES_PER_NODE - 1, Math.floor((end - 1 - base) / span));
      for (let i = i0; i <= i1; i++) {
        const e = readEntry(node, i);
        if (!e.present) continue;
        const logical = base + i * span;
        if (lvl === 1 || e.huge) leaf(logical, e.block, span, lvl);
        else visit(e.block, lvl - 1, logical);
      }
    };
    visit(root, level, 0);
    const mapped = runs.reduce((n, r) => n + r.count, 0);
    return { runs, holes: end - first - mapped, leaves, size, seq: 0 };
  }
}
