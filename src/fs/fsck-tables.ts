/**
 * fsck's page-table pass: a table must map exactly what the extent index
 * maps, with nodes in the data area owned by nobody else, at the level the
 * size asks for. A bad table is dropped and rebuilt once the walk is done
 * (tables are derived data).
 */
import { S_IFREG } from './api.js';
import type { Bits } from './bitmap.js';
import type { FsCore } from './core.js';
import type { FsckContext } from './fsck-context.js';
import type { Inode } from './inode.js';
import { BLOCK_SIZE, type Geometry } from '../core/format/pool.js';
import { blocksPerEntry, ENTRIES_PER_NODE, levelForSize } from '../core/format/ppt.js';
import { walkTable } from '../ppt/tables.js';

export class TableCheck {
  private readonly core: FsCore;
  private readonly g: Geometry;
  private readonly claimed: Bits;
  /** Files whose page table is rebuilt after the walk. */
  private readonly rebuild: Inode[] = [];

  constructor(private readonly ctx: FsckContext) {
    this.core = ctx.core;
    this.g = ctx.g;
    this.claimed = ctx.claimed;
  }

  private fix(kind: string, message: string, mend: () => void): void {
    this.ctx.fix(kind, message, mend);
  }

  /**
   * A page table must map exactly what the extent index maps, with nodes in
   * the data area owned by nobody else, at the level the size asks for.
   * A bad table is dropped and rebuilt (tables are derived data).
   */
  check(inode: Inode): void {
    const knobOn = this.core.sb.knobs.pageTablesOn === 1;
    const ref = this.core.tableOf(inode);
    if (!ref.root && !ref.level && !ref.nodes) {
      if (knobOn && inode.type === S_IFREG && inode.extents.length && levelForSize(inode.size) > 0) {
        this.fix('ppt', `inode ${inode.ino}: no page table while page_tables_on is 1`, () => this.rebuild.push(inode));
      }
      return;
    }
    if (!knobOn) {
      this.fix('ppt', `inode ${inode.ino}: a page table while page_tables_on is 0`, () => this.reset(inode));
      return;
    }
    const nodes = new Set<number>();
    let leafBlocks = 0;
    let why = '';
    if (inode.type !== S_IFREG) why = 'a page table on a file that is not regular';
    else if (ref.level !== levelForSize(inode.size)) why = `level ${ref.level}, size ${inode.size} needs ${levelForSize(inode.size)}`;
    else {
      try {
        walkTable(
          (b) => this.core.nodeStore.node(b),
          ref,
          (leaf) => {
            const segs = inode.extents.map(leaf.logical, leaf.count);
            const [seg] = segs;
            if (segs.length !== 1 || seg?.physical !== leaf.physical) throw new Error(`entry for logical block ${leaf.logical} maps pool block ${leaf.physical}, the extents say ${seg?.physical ?? 'a hole'}`);
            leafBlocks += leaf.count;
          },
          (b) => {
            if (b < this.g.dataStart || b >= this.g.totalBlocks || this.claimed.get(b) || nodes.has(b)) throw new Error(`node block ${b} is outside the data area or owned twice`);
            nodes.add(b);
          },
        );
        // Blocks preallocated past the end (fallocate --keep-size) beyond the root's reach have no entry.
        const reach = blocksPerEntry(ref.level) * ENTRIES_PER_NODE;
        const mapped = inode.extents.items.reduce((n, e) => n + Math.max(0, Math.min(e.logical + e.count, reach) - e.logical), 0);
        if (leafBlocks !== mapped) why = `the table maps ${leafBlocks} blocks, the extents ${mapped}`;
        else if (nodes.size !== ref.nodes) why = `${nodes.size} nodes, the inode says ${ref.nodes}`;
      } catch (err) {
        why = (err as Error).message;
      }
    }
    if (why) {
      this.fix('ppt', `inode ${inode.ino}: bad page table: ${why}`, () => {
        this.reset(inode);
        this.rebuild.push(inode);
      });
      return;
    }
    for (const b of nodes) this.claimed.set(b, true);
  }

  /** Forget a table without trusting its nodes (the bitmap pass frees them). */
  reset(inode: Inode): void {
    inode.pptRoot = 0;
    inode.pptLevel = 0;
    inode.pptNodes = 0;
    this.core.save(inode);
  }

  /** Rebuild the tables dropped above, once nothing found can be handed out. */
  rebuildAll(): void {
    for (const inode of this.rebuild) {
      this.reset(inode);
      this.core.syncTables(inode, 0, Math.ceil(inode.size / BLOCK_SIZE));
      this.core.save(inode);
      walkTable((b) => this.core.nodeStore.node(b), this.core.tableOf(inode), () => undefined, (b) => this.claimed.set(b, true));
    }
  }
}
