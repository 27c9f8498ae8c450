/**
 * Block allocation: extents, contiguity, 2 MiB alignment, and safe reuse.
 * Over 400 lines on purpose: one class whose methods all keep the same four
 * sets of blocks (used, freed this transaction, awaiting the journal reset,
 * lease-held) in step; split, each part would reach into the others' state.
 *
 * - `used` (memory) says what may not be handed out; the on-media bitmap says
 *   what the committed file system references. They differ for blocks freed
 *   in the running transaction: clear on media at once (so the free is part
 *   of the same atomic change) but kept used in memory until the commit is
 *   durable (a crash must never find them reused) and, for blocks the
 *   journal holds images of, until the journal is reset (replay would write
 *   the old image over the new owner's data).
 * - Files of 2 MiB or more get physical ≡ logical (mod 512 blocks), so each
 *   aligned 2 MiB of the file is one aligned 2 MiB of the pool (a huge entry).
 * - Small files and metadata are packed from a next-fit cursor; large files
 *   search aligned regions from a cursor of their own, so the two mix less.
 * - A reserve is kept for metadata, so a full pool still lets a directory
 *   grow a block or an extent chain a link (ENOSPC goes to data first).
 * - An open handle holds no block back (as ext4); a lease does: blocks that
 *   become allocatable pass through LeaseHold, which keeps those a live
 *   lease covers (lease-hold.ts).
 */
import { FsError, type BlockLeases } from './api.js';
import { Bits, MediaBitmap } from './bitmap.js';
import { HUGE_BLOCKS, type Geometry } from '../core/format/pool.js';
import { LeaseHold } from './lease-hold.js';

export interface Run {
  start: number;
  count: number;
  /** Set by allocate(): every block of the run is known to read as zeros. */
  zeroed?: boolean;
}

export interface AllocRequest {
  count: number;
  /** Preferred first block (contiguity with what precedes). */
  goal?: number;
  /** Logical block of the first block: asks for physical ≡ logical mod 512. */
  alignLogical?: number;
  /** Metadata may dip into the reserve. */
  meta?: boolean;
  /** Accept fewer blocks than asked (at least 1) rather than ENOSPC. */
  partial?: boolean;
}

export class BlockAllocator {
  private freeBlocks: number;
  /** Freed in the running transaction. */
  private freedThisTx: Run[] = [];
  /** Waiting for the journal reset (their old images are in the journal). */
  private freedAwaitingReset: Run[] = [];
  /**
   * Blocks in the two lists above, kept as they change: every mutation asks
   * `pending`, and after an `rm -r` the lists hold thousands of runs until
   * the journal's next reset (summing them each time was 12% of the CPU).
   */
  private freedThisTxBlocks = 0;
  private awaitingResetBlocks = 0;
  /** Blocks a lease covers, held back from reuse (none without leases). */
  private hold: LeaseHold | null = null;
  private smallCursor: number;
  private largeCursor: number;
  readonly reserve: number;
  /** Free blocks known to read as zeros (pre-zeroed); a subset of the free ones. */
  readonly zeroed: Bits;
  /** Free blocks that became allocatable and are not known zero: the pre-zeroer's queue. */
  dirtyFree: Run[] = [];
  /** Allocation takes pre-zeroed blocks first (the zeroout_blocks knob is 0). */
  preferZeroed = false;
  /** Keep `dirtyFree` (only while pre-zeroing is on). */
  queueDirty = false;
  /**
   * Called for each run allocate() hands out, before it returns: a sparse
   * pool reserves host blocks (host-space.ts). A throw (ENOSPC) undoes the
   * allocation and reaches the caller as the pool's own ENOSPC would.
   */
  hostReserve: ((start: number, count: number) => void) | undefined;
  /** Blocks whose host backing is not known (a sparse pool's): avoided on a retry after the host said ENOSPC. */
  hostUnbacked: (() => Run[]) | undefined;

  constructor(
    private readonly geometry: Geometry,
    private readonly used: Bits,
    private readonly media: MediaBitmap,
  ) {
    this.freeBlocks = geometry.totalBlocks - used.countSet();
    this.smallCursor = geometry.dataStart;
    const dataBlocks = geometry.totalBlocks - geometry.dataStart;
    this.largeCursor = alignUp(geometry.dataStart + Math.floor(dataBlocks / 8), HUGE_BLOCKS);
    this.reserve = Math.min(1024, Math.max(16, Math.floor(dataBlocks / 1000)));
    this.zeroed = new Bits(geometry.totalBlocks);
  }

  /** Free, known-zero blocks. */
  get zeroedFree(): number {
    let n = 0;
    for (let i = this.zeroed.nextSet(this.geometry.dataStart); i >= 0; ) {
      const run = this.zeroed.setRun(i, this.geometry.totalBlocks);
      n += run;
      i = this.zeroed.nextSet(i + run);
    }
    return n;
  }

  /** Every free extent (to queue the whole free space for pre-zeroing). */
  freeExtents(): Run[] {
    const out: Run[] = [];
    let i = this.geometry.dataStart;
    while (i < this.geometry.totalBlocks) {
      const start = this.used.nextClear(i);
      if (start < 0) break;
      const count = this.used.clearRun(start, this.geometry.totalBlocks);
      out.push({ start, count });
      i = start + count;
    }
    return out;
  }

  /** The pre-zeroer zeroed [start, start+count) (which it found free). */
  markZeroed(start: number, count: number): void {
    this.zeroed.setRange(start, count, true);
  }

  /**
   * Honour leases from now on. Live leases' blocks that are free now (held
   * back by a daemon that died) are taken out of the free space first;
   * returns how many. Call before anything is freed.
   */
  useLeases(leases: BlockLeases): number {
    this.hold = new LeaseHold(leases);
    return this.hold.adopt(
      (b) => b >= this.geometry.dataStart && b < this.geometry.totalBlocks && !this.used.get(b),
      (run) => {
        this.used.setRange(run.start, run.count, true);
        this.freeBlocks -= run.count;
        this.zeroed.setRange(run.start, run.count, false);
      },
    );
  }

  /** Blocks held back because a lease covers them. */
  get leaseHeld(): number {
    return this.hold?.blocks ?? 0;
  }

  /** Let go of held blocks whose leases are gone. */
  recheckLeases(): void {
    this.hold?.recheck((run) => this.release(run));
  }

  /** Blocks free now or as soon as the running transaction commits. */
  get freeSoon(): number {
    return this.freeBlocks + this.freedThisTxBlocks + this.awaitingResetBlocks;
  }

  get freeNow(): number {
    return this.freeBlocks;
  }

  /** Blocks that become allocatable after a commit, a journal reset, or a lease's end. */
  get pending(): number {
    return this.freedThisTxBlocks + this.awaitingResetBlocks + this.leaseHeld;
  }

  /** Where the next small and large allocations start looking (the prewriter keeps what follows written on the host). */
  get cursors(): [number, number] {
    return [this.smallCursor, this.largeCursor];
  }

  isUsed(block: number): boolean {
    return this.used.get(block);
  }

  isUsedOnMedia(block: number): boolean {
    return this.media.get(block);
  }

  /** fsck: keep everything in `claimed` from being handed out (in memory only). */
  absorb(claimed: Bits): void {
    for (let b = this.geometry.dataStart; b < this.geometry.totalBlocks; b++) {
      if (claimed.get(b) && !this.used.get(b)) {
        this.used.set(b, true);
        this.freeBlocks--;
      }
    }
  }

  /** fsck repair: never hand out [start, start+count) (in memory only; out-of-range blocks are ignored). */
  protect(start: number, count: number): void {
    const from = Math.max(start, this.geometry.dataStart);
    const to = Math.min(start + count, this.geometry.totalBlocks);
    for (let b = from; b < to; b++) {
      if (!this.used.get(b)) {
        this.used.set(b, true);
        this.freeBlocks--;
      }
    }
  }

  /** fsck repair: the bitmap becomes exactly `claimed` (plus the fixed metadata area). */
  rebuild(claimed: Bits): void {
    this.freedThisTx = [];
    this.freedAwaitingReset = [];
    this.freedThisTxBlocks = 0;
    this.awaitingResetBlocks = 0;
    let free = 0;
    for (let b = 0; b < this.geometry.totalBlocks; b++) {
      const want = b < this.geometry.dataStart || claimed.get(b);
      if (this.media.get(b) !== want) this.media.set(b, want);
      this.used.set(b, want);
      if (!want) free++;
    }
    this.freeBlocks = free;
  }

  /** Allocate blocks, all or nothing (unless `partial`). Marks them used on media. */
  allocate(req: AllocRequest): Run[] {
    const available = this.freeBlocks - (req.meta ? 0 : this.reserve);
    if (available <= 0 || (!req.partial && available < req.count)) throw new FsError('ENOSPC', 'no space left in the pool');
    let want = Math.min(req.count, available);
    const runs: Run[] = [];
    const take = (start: number, count: number): void => {
      this.used.setRange(start, count, true);
      this.media.setRange(start, count, true);
      this.freeBlocks -= count;
      want -= count;
      // Split by zeroed state, so the caller knows what needs no zeroing.
      for (let i = start; i < start + count; ) {
        const z = this.zeroed.get(i);
        let j = i + 1;
        while (j < start + count && this.zeroed.get(j) === z) j++;
        if (z) this.zeroed.setRange(i, j - i, false);
        const last = runs[runs.length - 1];
        if (last && last.start + last.count === i && !!last.zeroed === z) last.count += j - i;
        else runs.push({ start: i, count: j - i, zeroed: z });
        i = j;
      }
    };
    if (req.goal !== undefined && req.goal >= this.geometry.dataStart && req.goal < this.geometry.totalBlocks) {
      const n = this.used.clearRun(req.goal, want);
      if (n > 0 && (req.alignLogical === undefined || mod(req.goal - req.alignLogical, HUGE_BLOCKS) === 0)) take(req.goal, n);
    }
    const zeroedFirst = this.preferZeroed && !req.meta;
    if (want > 0 && req.alignLogical !== undefined) {
      let start = zeroedFirst ? this.findAligned(req.alignLogical + (req.count - want), want, this.zeroed) : -1;
      if (start < 0) start = this.findAligned(req.alignLogical + (req.count - want), want);
      if (start >= 0) take(start, this.used.clearRun(start, want));
    }
    if (want > 0 && zeroedFirst && req.alignLogical === undefined) {
      // A pre-zeroed run of the whole size, first fit; else the usual search.
      for (let i = this.zeroed.nextSet(this.smallCursor); i >= 0; ) {
        const n = this.zeroed.setRun(i, want);
        if (n >= want) {
          take(i, n);
          this.smallCursor = i + n;
          break;
        }
        i = this.zeroed.nextSet(i + n);
      }
    }
    while (want > 0) {
      const cursorName = req.alignLogical !== undefined ? 'largeCursor' : 'smallCursor';
      const run = this.findRun(this[cursorName], want);
      take(run.start, run.count);
      this[cursorName] = run.start + run.count;
    }
    if (this.hostReserve) {
      try {
        this.reserveOnHost(runs);
      } catch (err) {
        // The host is full: free blocks it already backs may still do.
        if ((err as FsError).code !== 'ENOSPC' || !this.hostUnbacked || this.avoiding) throw err;
        return this.allocateAvoiding(req, this.hostUnbacked());
      }
    }
    return runs;
  }

  private avoiding = false;

  /** allocate() with the free blocks of `avoid` out of reach (in memory only, for this call). */
  private allocateAvoiding(req: AllocRequest, avoid: Run[]): Run[] {
    const hidden: Run[] = [];
    for (const r of avoid) {
      for (let b = this.used.nextClear(r.start, r.start + r.count); b >= 0;) {
        const n = this.used.clearRun(b, r.start + r.count - b);
        this.used.setRange(b, n, true);
        this.freeBlocks -= n;
        hidden.push({ start: b, count: n });
        b = this.used.nextClear(b + n, r.start + r.count);
      }
    }
    this.avoiding = true;
    try {
      return this.allocate(req);
    } finally {
      this.avoiding = false;
      for (const r of hidden) {
        this.used.setRange(r.start, r.count, false);
        this.freeBlocks += r.count;
      }
    }
  }

  /** hostReserve for each run; on a failure every run goes back as it was. */
  private reserveOnHost(runs: Run[]): void {
    try {
      for (const r of runs) this.hostReserve!(r.start, r.count);
    } catch (err) {
      for (const r of runs) {
        this.used.setRange(r.start, r.count, false);
        this.media.setRange(r.start, r.count, false);
        this.freeBlocks += r.count;
        if (r.zeroed) this.zeroed.setRange(r.start, r.count, true);
      }
      throw err;
    }
  }

  /** Free blocks whose references the running transaction drops. */
  free(run: Run): void {
    this.media.setRange(run.start, run.count, false);
    this.freedThisTx.push({ ...run });
    this.freedThisTxBlocks += run.count;
  }

  /** Free blocks that were never committed (an operation that backs out). */
  freeUncommitted(run: Run): void {
    this.media.setRange(run.start, run.count, false);
    this.release(run);
  }

  /** The running transaction is durable: its frees become usable, or wait for the reset. */
  committed(journaled: (block: number) => boolean): void {
    const ready: Run[] = [];
    for (const run of this.freedThisTx) {
      let i = run.start;
      while (i < run.start + run.count) {
        const held = journaled(i);
        let j = i + 1;
        while (j < run.start + run.count && journaled(j) === held) j++;
        if (held) {
          this.freedAwaitingReset.push({ start: i, count: j - i });
          this.awaitingResetBlocks += j - i;
        } else ready.push({ start: i, count: j - i });
        i = j;
      }
    }
    this.freedThisTx = [];
    this.freedThisTxBlocks = 0;
    // Held blocks are looked at again with every commit: one scan for both.
    if (this.hold) this.hold.settle(ready, (run) => this.release(run), true);
    else for (const run of ready) this.release(run);
  }

  /** The journal was reset: nothing it held can be replayed any more. */
  journalReset(): void {
    const ready = this.freedAwaitingReset;
    this.freedAwaitingReset = [];
    this.awaitingResetBlocks = 0;
    this.releaseUnleased(ready);
  }

  /** Make runs allocatable, but hold what a live lease covers. */
  private releaseUnleased(runs: Run[]): void {
    if (this.hold) this.hold.settle(runs, (run) => this.release(run));
    else for (const run of runs) this.release(run);
  }

  private release(run: Run): void {
    this.used.setRange(run.start, run.count, false);
    this.freeBlocks += run.count;
    if (this.queueDirty) this.dirtyFree.push({ start: run.start, count: run.count });
  }

  /** First free run from `cursor` (wrapping): the first one of `want` blocks, else the largest seen. */
  private findRun(cursor: number, want: number): Run {
    const { dataStart, totalBlocks } = this.geometry;
    let best: Run = { start: -1, count: 0 };
    for (const [from, to] of [[Math.max(cursor, dataStart), totalBlocks], [dataStart, Math.max(cursor, dataStart)]] as const) {
      let i = from;
      while (i < to) {
        const start = this.used.nextClear(i, to);
        if (start < 0) break;
        const count = this.used.clearRun(start, Math.min(want, to - start));
        if (count >= want) return { start, count: want };
        if (count > best.count) best = { start, count };
        i = start + count;
      }
    }
    if (best.count === 0) throw new FsError('ENOSPC', 'no free block');
    return best;
  }

  /** A free start P ≡ logical (mod 512) with a run reaching at least the end of its 2 MiB region. */
  private findAligned(logical: number, want: number, zeroed?: Bits): number {
    const { dataStart, totalBlocks } = this.geometry;
    const phase = mod(logical, HUGE_BLOCKS);
    const need = Math.min(want, HUGE_BLOCKS - phase);
    const first = alignUp(dataStart, HUGE_BLOCKS);
    const regions = Math.floor((totalBlocks - first) / HUGE_BLOCKS);
    if (regions <= 0) return -1;
    const startRegion = Math.max(0, Math.floor((this.largeCursor - first) / HUGE_BLOCKS)) % regions;
    for (let k = 0; k < regions; k++) {
      const base = first + ((startRegion + k) % regions) * HUGE_BLOCKS;
      const start = base + phase;
      if (zeroed ? zeroed.setRun(start, need) >= need : this.used.clearRun(start, need) >= need) {
        this.largeCursor = base + HUGE_BLOCKS;
        return start;
      }
    }
    return -1;
  }

  /** Free extents and how many whole aligned 2 MiB regions are free (for `info`). */
  fragmentation(): { freeExtents: number; largestFreeExtentBlocks: number; freeHugeRegions: number } {
    let freeExtents = 0;
    let largest = 0;
    let i = this.geometry.dataStart;
    while (i < this.geometry.totalBlocks) {
      const start = this.used.nextClear(i);
      if (start < 0) break;
      const count = this.used.clearRun(start, this.geometry.totalBlocks);
      freeExtents++;
      largest = Math.max(largest, count);
      i = start + count;
    }
    let freeHugeRegions = 0;
    for (let base = alignUp(this.geometry.dataStart, HUGE_BLOCKS); base + HUGE_BLOCKS <= this.geometry.totalBlocks; base += HUGE_BLOCKS) {
      if (this.used.clearRun(base, HUGE_BLOCKS) === HUGE_BLOCKS) freeHugeRegions++;
    }
    return { freeExtents, largestFreeExtentBlocks: largest, freeHugeRegions };
  }
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}
