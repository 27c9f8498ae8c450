/**
 * What fsck's passes share: the pool, whether to repair, the blocks claimed
 * so far, and how a problem is reported (and mended, with repair).
 */
import { Bits } from './bitmap.js';
import type { FsCore } from './core.js';
import type { Report } from './fsck-superblock.js';
import type { Geometry } from '../core/format/pool.js';

export class FsckContext {
  readonly g: Geometry;
  /** Blocks owned by what the walk has found (fixed regions from the start). */
  readonly claimed: Bits;

  constructor(readonly core: FsCore, readonly repair: boolean, private readonly report: Report) {
    this.g = core.sb.geometry;
    this.claimed = new Bits(this.g.totalBlocks);
    this.claimed.setRange(0, this.g.dataStart, true);
  }

  /** Report a problem; with repair, mend it first. */
  fix(kind: string, message: string, mend: () => void): void {
    if (this.repair) mend();
    this.report(kind, message, this.repair);
  }
}
