/**
 * The process's access to a pool, read-only except through mappings: the
 * three views (mapped once per process by the native shim and shared by all
 * worker threads), the superblock (geometry, knobs) and the lock-free read
 * of a file's inode and page table (docs/format.md, "Readers in other
 * processes": the inode's sequence word is read before and after, and the
 * read is retried when it was odd or changed). The table walk itself is
 * native (native-shim/core/table.c): one call per read, no object per entry.
 */
import fs from 'node:fs';
import { INODE_SEQ as INO_SEQ } from '../core/format/inode.js';
import { BLOCK_SIZE, INODE_SIZE, INODES_PER_BLOCK, type Geometry } from '../core/format/pool.js';
import { decodeSuperblock, SB_MSYNC as SB_KNOB_MSYNC, SB_ZOMBIE_MAX_PAGES as SB_KNOB_ZOMBIE_MAX_PAGES } from '../core/format/superblock.js';
import { native, OUT, type PoolView, type PoolViewKind } from './native.js';
import { DaxvmError } from './errors.js';

const WINDOW = 2 ** 30;

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

export class PoolAccess {
  private static readonly byFile = new Map<string, PoolAccess>();
  readonly path: string;
  readonly ro: PoolView;
  readonly geometry: Geometry;
  private readonly windows: Buffer[] = [];
  private readonly views = new Map<PoolViewKind, PoolView | DaxvmError>();
  /** A descriptor of our own for the lock probe (served()); opened on first use, kept for the process's life. */
  private lockFd: number | undefined;
  /** The superblock, in place in the read-only view. */
  private readonly superblock: Buffer;

  private constructor(poolPath: string) {
    this.path = poolPath;
    this.ro = native.poolView(poolPath, 'ro');
    this.views.set('ro', this.ro);
    this.superblock = this.bytes(0, BLOCK_SIZE);
    const decoded = decodeSuperblock(this.superblock);
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

  /** The knobs the library follows, as the daemon last wrote them (the superblock is read in place). */
  knobs(): { msync: number; zombieMaxPages: number } {
    const sb = this.superblock;
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
    for (;;) {
      const out = scratch;
      const n = native.readTable(this.ro.handle, ino, gen, first, end, out);
      if (n < 0) return { problem: tableProblem(n, ino) };
      if (OUT.HEAD + 2 * n > out.length) { // more runs than room: again, with room for them all
        scratch = new Float64Array(OUT.HEAD + 2 * n);
        continue;
      }
      return tableFrom(out, n, first);
    }
  }

  /** Is inode `ino`'s sequence word still `seq` (its table unchanged since it was read)? */
  unchanged(ino: number, seq: number): boolean {
    return this.inode(ino).readUInt32LE(INO_SEQ) === seq;
  }
}

/** Room for the runs of one read; grown when a table has more. */
let scratch = new Float64Array(OUT.HEAD + 2 * 64);

/** The table read into `out` by the shim (OUT's layout), as a TableRead. */
export function tableFrom(out: Float64Array, nruns: number, first: number): TableRead {
  const runs: Run[] = [];
  let logical = first; // runs follow each other in file order (the logical start is exact when there is no hole)
  for (let i = 0; i < nruns; i++) {
    const count = out[OUT.HEAD + 2 * i + 1]!;
    runs.push({ logical, physical: out[OUT.HEAD + 2 * i]!, count });
    logical += count;
  }
  return {
    runs, holes: out[OUT.HOLES]!, size: out[OUT.SIZE]!, seq: out[OUT.SEQ]!,
    leaves: { pte: out[OUT.PTE]!, pmd: out[OUT.PMD]!, pud: out[OUT.PUD]! },
  };
}

/** Why the shim found no table (its negative answers), in words. */
export function tableProblem(code: number, ino: number): string {
  const text = native.tableProblem(code);
  return text === 'inode outside the inode table' ? `inode ${ino} outside the inode table` : text;
}
