/**
 * Prewriting: the host's unwritten extents turned into written ones ahead
 * of use, off the request path.
 *
 * A pool allocated at mkfs (fallocate) is, on ext4 and xfs, unwritten
 * extents: host blocks that read as zeros. The host converts an extent at
 * the first write that reaches it, and that conversion is host metadata,
 * written (on a journaled ext4: committed, two device flushes) inside the
 * fdatasync that writes the block back: ours, at an fsync. Measured per 4
 * KiB append + fsync on a fresh pool: on the no-journal ext4 of /dev/vda, 2
 * more serial metadata writes; on a journaled ext4, 2 host commits (3.9
 * device flushes against ext4's own 2). A block written once stays written.
 *
 * So after an fsync the daemon writes zeros, and makes them durable with a
 * barrier of its own, into the unwritten parts of what the next ones will
 * reach: the journal ahead of its write position, and the free blocks ahead
 * of the allocator's two cursors (where the next new blocks come from). It
 * acts only when the nearer half of such a window has unwritten blocks,
 * then converts the whole window (a few ticks of at most BLOCKS_PER_TICK
 * blocks), so an append + fsync loop costs one background round every
 * DATA_AHEAD / 2 blocks, not one per fsync.
 *
 * Why writing zeros there is safe: an unwritten extent reads as zeros, so
 * the stores change no byte anyone could rely on; data blocks are written
 * only while free in memory (a block freed by a transaction not yet durable,
 * or one the journal holds an image of, or one a lease covers, is not: see
 * alloc.ts), and no mapping stores into a free block; journal blocks only
 * past the write position, which replay never reaches (it stops at the
 * first block that does not continue the sequence, and zeros do not). The
 * tick runs on the file system's one thread, between operations, so none
 * of our own stores interleaves with it.
 */
import createDebug from 'debug';
import type { Pool } from '../media/pool.js';
import type { BlockAllocator } from './alloc.js';
import type { Journal } from './journal.js';
import { BLOCK_SIZE, type Geometry } from '../core/format/pool.js';

const log = createDebug('daxvm:fs');

/** What the prewriter works on (the file system's core is one). */
export interface PrewriteTarget {
  readonly alloc: BlockAllocator;
  readonly pool: Pool;
  readonly journal: Journal;
  readonly sb: { readonly geometry: Geometry };
}

/** Blocks kept written ahead of each allocation cursor (2 MiB), and of the journal's position. */
const DATA_AHEAD = 512;
const JOURNAL_AHEAD = 256;
/** Work per tick (512 KiB, then one fdatasync), and the pause between ticks. */
const BLOCKS_PER_TICK = 128;
const TICK_MS = 20;

export class Prewriter {
  /** Off unless the opener asked (the mount's daemon does). */
  enabled = false;
  blocksWritten = 0;
  /**
   * A failed barrier of ours: the host reports a write-back error to one
   * fdatasync only, and ours wrote back the operations' stores as well, so
   * the next commit fails with it (takeBarrierError) instead of trusting a
   * barrier that would then succeed.
   */
  private barrierError: Error | undefined;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly core: PrewriteTarget) {}

  /** After a barrier an fsync asked for: schedule a tick. */
  kick(): void {
    if (!this.enabled || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      try {
        if (this.tick() >= BLOCKS_PER_TICK) this.kick();
      } catch (err) {
        this.enabled = false;
        log('prewriting stopped: %O', err);
      }
    }, TICK_MS);
    this.timer.unref();
  }

  /** Write zeros into up to `budget` unwritten blocks of the windows that need it; returns how many. */
  tick(budget = BLOCKS_PER_TICK): number {
    const { alloc, pool, journal } = this.core;
    const g = this.core.sb.geometry;
    const windows: Array<{ from: number; to: number; data: boolean }> = [];
    const jFrom = g.journalStart + journal.pos;
    windows.push({ from: jFrom, to: Math.min(g.journalStart + journal.capacity, jFrom + JOURNAL_AHEAD), data: false });
    for (const c of alloc.cursors) windows.push({ from: c, to: Math.min(g.totalBlocks, c + DATA_AHEAD), data: true });
    let done = 0;
    const seen: Array<[number, number]> = [];
    for (const w of windows) {
      // Windows of the two cursors may overlap: what an earlier one covered is done.
      for (const [a, b] of seen) if (w.from >= a && w.from < b) w.from = b;
      if (w.from >= w.to || done >= budget) continue;
      const half = w.from + Math.ceil((w.to - w.from) / 2);
      const near = pool.unwrittenRanges(w.from * BLOCK_SIZE, (half - w.from) * BLOCK_SIZE);
      if (!near) {
        this.enabled = false; // the host cannot tell: nothing to do on it
        return done;
      }
      if (near.length === 0) continue;
      seen.push([w.from, w.to]);
      for (const [off, len] of pool.unwrittenRanges(w.from * BLOCK_SIZE, (w.to - w.from) * BLOCK_SIZE) ?? []) {
        const end = Math.floor((off + len) / BLOCK_SIZE);
        for (let b = Math.ceil(off / BLOCK_SIZE); b < end && done < budget;) {
          if (w.data && alloc.isUsed(b)) {
            b++;
            continue;
          }
          let n = 1;
          while (b + n < end && done + n < budget && !(w.data && alloc.isUsed(b + n))) n++;
          pool.fill(b * BLOCK_SIZE, n * BLOCK_SIZE, 0);
          done += n;
          b += n;
        }
      }
    }
    if (done > 0) {
      try {
        pool.persistAll();
      } catch (err) {
        // That barrier wrote back whatever else was dirty too: its error is the next commit's.
        this.barrierError = err as Error;
        throw err;
      }
      this.blocksWritten += done;
      log('prewrote %d blocks', done);
    }
    return done;
  }

  takeBarrierError(): Error | undefined {
    const err = this.barrierError;
    this.barrierError = undefined;
    return err;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
