/**
 * Pre-zeroing, done for real: with `zeroout_blocks` 0, blocks that become
 * free are zeroed in the background, off the request path, and allocation
 * takes pre-zeroed blocks first. Only when none fit does a write zero
 * synchronously, and that is counted. The method is the media layer's
 * (Pool.zeroRange): a pool allocated on the host keeps its host blocks
 * (FALLOC_FL_ZERO_RANGE, or zeros stored where the host lacks it, e.g.
 * tmpfs), so nothing can turn into a hole that a store would SIGBUS on when
 * the host is full; a sparse pool punches holes, which the allocator backs
 * again before reuse (host-space.ts).
 *
 * A block is queued only once it is allocatable, i.e. once the transaction
 * that freed it is durable (and, for blocks the journal holds an image of,
 * after the journal reset): zeroing it can never destroy committed data.
 */
import createDebug from 'debug';
import type { Pool } from '../media/pool.js';
import type { BlockAllocator } from './alloc.js';
import { BLOCK_SIZE } from '../core/format/pool.js';

const log = createDebug('daxvm:fs');

/** What the zeroer works on (the file system's core is one): the allocator's queues and the pool. */
export interface ZeroTarget {
  readonly alloc: BlockAllocator;
  readonly pool: Pool;
  readonly readOnly: boolean;
}

/** Work per tick, and the pause between ticks: background, not a hog. */
const BLOCKS_PER_TICK = 16384; // 64 MiB of holes per tick
const TICK_MS = 20;

export class Zeroer {
  private timer: NodeJS.Timeout | null = null;
  blocksZeroed = 0;

  constructor(private readonly core: ZeroTarget) {}

  /** Follow the knob: on (knob 0) queue the whole free space; off, drop the queue. */
  configure(zerooutBlocks: number): void {
    const alloc = this.core.alloc;
    const on = zerooutBlocks === 0 && !this.core.readOnly;
    alloc.preferZeroed = on;
    alloc.queueDirty = on;
    if (!on) {
      alloc.dirtyFree = [];
      this.stop();
      return;
    }
    alloc.dirtyFree = alloc.freeExtents();
    this.kick();
  }

  /** Schedule a tick if there is work. */
  kick(): void {
    if (this.timer || this.core.alloc.dirtyFree.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      try {
        this.tick();
      } catch (err) {
        log('pre-zeroing stopped: %O', err);
        return;
      }
      this.kick();
    }, TICK_MS);
    this.timer.unref();
  }

  /** Zero up to BLOCKS_PER_TICK queued blocks that are still free and not yet zero. */
  tick(budget = BLOCKS_PER_TICK): number {
    const alloc = this.core.alloc;
    let done = 0;
    for (let run = alloc.dirtyFree[0]; budget > 0 && run; run = alloc.dirtyFree[0]) {
      const n = Math.min(run.count, budget);
      // Only what is still free: the queue may be stale (blocks reallocated since).
      for (let b = run.start; b < run.start + n; ) {
        if (alloc.isUsed(b) || alloc.zeroed.get(b)) { b++; continue; }
        let e = b + 1;
        while (e < run.start + n && !alloc.isUsed(e) && !alloc.zeroed.get(e)) e++;
        this.core.pool.zeroRange(b * BLOCK_SIZE, (e - b) * BLOCK_SIZE);
        alloc.markZeroed(b, e - b);
        done += e - b;
        b = e;
      }
      run.start += n;
      run.count -= n;
      budget -= n;
      if (run.count === 0) alloc.dirtyFree.shift();
    }
    this.blocksZeroed += done;
    if (done) log('pre-zeroed %d blocks', done);
    return done;
  }

  /** Zero everything queued now (tests, and `sync` of the knob file). */
  drain(): void {
    while (this.core.alloc.dirtyFree.length) this.tick(Number.MAX_SAFE_INTEGER);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
