/**
 * fsck's block pass: every block an inode owns is claimed once; with
 * repair, what cannot be owned is let go (and the bitmap pass frees it),
 * and until the walk has claimed everything, every block any inode record
 * refers to is kept from the allocator. The bitmaps are then compared with
 * what was claimed and reached.
 */
import { FsError } from './api.js';
import type { Bits } from './bitmap.js';
import type { FsCore } from './core.js';
import { ExtentList, type Extent } from './extents.js';
import type { FsckContext } from './fsck-context.js';
import type { TableCheck } from './fsck-tables.js';
import type { Inode } from './inode.js';
import { loadXattrs } from './xattr.js';
import { INODE_FLAG_INLINE_SYMLINK } from '../core/format/inode.js';
import { BLOCK_SIZE, type Geometry } from '../core/format/pool.js';
import { walkTable } from '../ppt/tables.js';

export class BlockCheck {
  private readonly core: FsCore;
  private readonly g: Geometry;
  private readonly claimed: Bits;
  private readonly repair: boolean;
  /** Inodes whose blocks were claimed already. */
  private readonly checked = new Set<number>();

  constructor(private readonly ctx: FsckContext, private readonly tables: TableCheck) {
    this.core = ctx.core;
    this.g = ctx.g;
    this.claimed = ctx.claimed;
    this.repair = ctx.repair;
  }

  private fix(kind: string, message: string, mend: () => void): void {
    this.ctx.fix(kind, message, mend);
  }

  /**
   * Claim every block the inode owns. With repair, what cannot be owned is
   * let go: extents out of order, outside the data area, on blocks another
   * owner claimed first; an extent chain on such blocks is written anew; extended
   * attributes that cannot be read are dropped. Blocks let go are not
   * claimed, so the bitmap pass frees them (or leaves them to their owner).
   * A regular file may own blocks past its end: fallocate --keep-size.
   */
  check(inode: Inode): void {
    if (this.checked.has(inode.ino)) return;
    this.checked.add(inode.ino);
    const ino = inode.ino;
    let changed = false;
    const free = (start: number, n: number): string => {
      if (start < this.g.dataStart || start + n > this.g.totalBlocks) return 'lies outside the data area';
      for (let b = start; b < start + n; b++) if (this.claimed.get(b)) return `shares block ${b} with another owner`;
      return '';
    };
    let count = 0;
    const claim = (start: number, n: number): void => {
      this.claimed.setRange(start, n, true);
      count += n;
    };
    if (!(inode.flags & INODE_FLAG_INLINE_SYMLINK)) {
      const keep: Extent[] = [];
      let prevEnd = 0;
      for (const e of inode.extents.items) {
        const what = `inode ${ino}: extent ${e.logical}+${e.count} at block ${e.physical}`;
        const why = e.count <= 0 || e.logical < prevEnd ? 'overlaps another or is out of order' : free(e.physical, e.count);
        if (!why) keep.push({ ...e });
        if (why) this.fix('extent', `${what} ${why}; ${this.repair ? 'let go' : '--repair lets it go'}`, () => { changed = true; });
        prevEnd = Math.max(prevEnd, e.logical + e.count);
      }
      for (const e of keep) claim(e.physical, e.count);
      if (changed) {
        inode.extents = new ExtentList(keep);
        inode.dir = null;
      }
    }
    const chainBad = inode.chainBlocks.map((b) => free(b, 1)).find((w) => w) ??
      (new Set(inode.chainBlocks).size !== inode.chainBlocks.length ? 'uses a block twice' : '');
    if (chainBad) {
      this.fix('extent', `inode ${ino}: its extent chain ${chainBad}; ${this.repair ? 'written anew' : '--repair writes it anew'}`, () => {
        inode.chainBlocks = [];
        inode.extentChain = 0;
        changed = true;
      });
    } else {
      for (const b of inode.chainBlocks) claim(b, 1);
    }
    if (inode.xattrBlock) {
      const why = free(inode.xattrBlock, 1) || this.xattrProblem(inode);
      if (why) {
        this.fix('xattr', `inode ${ino}: its extended attributes cannot be used (${why}); ${this.repair ? 'dropped' : '--repair drops them'}`, () => {
          inode.xattrBlock = 0;
          inode.xattrs = null;
          changed = true;
        });
      } else {
        claim(inode.xattrBlock, 1);
      }
    }
    this.tables.check(inode);
    if (changed) {
      // Saving writes a chain anew where one is needed (blocks in use are all protected by now).
      this.core.save(inode);
      for (const b of inode.chainBlocks) if (!this.claimed.get(b)) claim(b, 1);
      inode.blocks = count;
      this.core.save(inode);
    }
    if (count !== inode.blocks) {
      this.fix('inode', `inode ${ino}: block count ${inode.blocks}, owns ${count}`, () => { inode.blocks = count; this.core.save(inode); });
    }
  }

  /** Why the inode's xattr block cannot be read ('' when it can). */
  private xattrProblem(inode: Inode): string {
    try {
      inode.xattrs = null;
      loadXattrs(this.core.store, inode);
      return '';
    } catch (err) {
      if (!(err instanceof FsError)) throw err;
      inode.xattrs = null;
      return err.message;
    }
  }

  /**
   * Repair only: keep every block that any inode record refers to from
   * being handed out by a repair that allocates (a new extent chain, a
   * directory block) before the walk has claimed them all: the bitmap may
   * be the damaged part.
   */
  protectReferenced(): void {
    const alloc = this.core.alloc;
    for (let ino = 1; ino < this.g.inodeCount; ino++) {
      const inode = this.core.inodes.peek(ino);
      if (!inode) continue;
      for (const e of inode.extents.items) alloc.protect(e.physical, e.count);
      for (const b of inode.chainBlocks) alloc.protect(b, 1);
      if (inode.xattrBlock) alloc.protect(inode.xattrBlock, 1);
      if (inode.pptRoot) {
        try {
          walkTable((b) => this.core.pool.read(b * BLOCK_SIZE, BLOCK_SIZE), this.core.tableOf(inode), () => undefined, (b) => alloc.protect(b, 1));
        } catch {
          // a table that cannot be walked is rebuilt later; its nodes are not kept
        }
      }
    }
  }

  bitmaps(reached: Set<number>): void {
    const alloc = this.core.alloc;
    let markedFree = 0;
    let markedUsed = 0;
    for (let b = this.g.dataStart; b < this.g.totalBlocks; b++) {
      const onMedia = alloc.isUsedOnMedia(b);
      const want = this.claimed.get(b);
      if (onMedia === want) continue;
      if (want) markedFree++;
      else markedUsed++;
    }
    if (markedFree || markedUsed) {
      this.fix('bitmap', `block bitmap: ${markedFree} used block(s) marked free, ${markedUsed} free block(s) marked used`, () => alloc.rebuild(this.claimed));
    }
    const inodeDiff = this.core.inodes.differences(reached);
    if (inodeDiff) this.fix('bitmap', `inode bitmap: ${inodeDiff} inode(s) marked wrongly`, () => this.core.inodes.rebuild(reached));
  }
}
