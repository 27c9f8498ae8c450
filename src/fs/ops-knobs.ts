/**
 * The knobs (upstream's /proc/fs/daxvm files, our `.daxvm/` directory):
 * values persist in the superblock; turning page tables on builds them for
 * every file, turning them off deletes them all. Both are split into
 * several transactions, each one consistent.
 */
import { FsError, S_IFREG } from './api.js';
import type { FsCore } from './core.js';
import { formatPpt } from '../core/format/ppt.js';
import { KNOB_RANGES, type KnobName } from '../core/format/superblock.js';
import { walkTable } from '../ppt/tables.js';

const LIMITS = KNOB_RANGES;

/** Parse what `echo N > knob` wrote: EINVAL (and nothing changes) for anything else. */
export function parseKnobValue(name: KnobName, text: string): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) throw new FsError('EINVAL', `${name}: not a number: ${JSON.stringify(trimmed)}`);
  const value = Number(trimmed);
  const [lo, hi] = LIMITS[name];
  if (value < lo || value > hi) throw new FsError('EINVAL', `${name}: ${value} is outside ${lo}..${hi}`);
  return value;
}

/** Regular files in use, by inode number. */
function* regularFiles(core: FsCore): Generator<number> {
  for (const ino of core.inodes.inUse()) {
    const inode = core.inode(ino);
    if (inode.type === S_IFREG) yield ino;
  }
}

export function setKnob(core: FsCore, name: KnobName, value: number, onProgress?: (done: number) => void): void {
  core.requireWritable();
  const [lo, hi] = LIMITS[name];
  if (!Number.isInteger(value) || value < lo || value > hi) throw new FsError('EINVAL', `${name}: ${value} is outside ${lo}..${hi}`);
  const before = core.sb.knobs[name];
  core.commit();
  core.sb.knobs[name] = value;
  core.writeSuperblock();
  if (name === 'zerooutBlocks' && before !== value) core.zeroer.configure(value);
  if (name !== 'pageTablesOn' || before === value) return;
  // Build or delete every table, committing as the transaction grows.
  let done = 0;
  const files = [...regularFiles(core)];
  try {
    for (const ino of files) {
      const inode = core.inode(ino);
      if (value) {
        // Tables are optional: they never eat the metadata reserve.
        if (core.alloc.freeNow < core.alloc.reserve + TABLE_HEADROOM) throw new FsError('ENOSPC', 'no room left for page tables');
        core.syncTables(inode, 0, Math.ceil(inode.size / 4096));
      } else {
        core.dropTable(inode);
      }
      core.save(inode);
      core.afterMutation();
      onProgress?.(++done);
    }
  } catch (err) {
    // A build that cannot finish is undone: the knob goes back to 0.
    core.sb.knobs[name] = before;
    for (const ino of files) {
      const inode = core.inode(ino);
      if (inode.pptRoot) {
        core.dropTable(inode);
        core.save(inode);
        core.afterMutation();
      }
    }
    core.commit();
    core.writeSuperblock();
    throw err;
  }
  core.commit();
}

/** Free blocks a table build leaves beyond the metadata reserve. */
const TABLE_HEADROOM = 256;

export interface TableTotals {
  files: number;
  nodes: number;
  hugePmd: number;
  hugePud: number;
  pte: number;
}

/** Walk every table (stats, occupancy). */
export function tableTotals(core: FsCore): TableTotals {
  const totals: TableTotals = { files: 0, nodes: 0, hugePmd: 0, hugePud: 0, pte: 0 };
  for (const ino of regularFiles(core)) {
    const inode = core.inode(ino);
    if (!inode.pptRoot) continue;
    totals.files++;
    walkTable(
      (b) => core.nodeStore.node(b),
      core.tableOf(inode),
      (leaf) => {
        if (leaf.level === 1) totals.pte++;
        else if (leaf.level === 2) totals.hugePmd++;
        else totals.hugePud++;
      },
      () => totals.nodes++,
    );
  }
  return totals;
}

/** `user.daxvm.ppt`: what the library needs to find a file's table in the pool. */
export function pptInfo(core: FsCore, ino: number): string {
  const inode = core.inode(ino);
  // The library reads the pool directly: the inode and its table must be
  // home, and home writes follow a commit. Metadata only: file data is in
  // the pool already, and the reader's mapping shares the page cache, so no
  // barrier for data (that would be an fdatasync of the pool per mmap).
  if (core.store.dirtyCount > 0) core.commit();
  return formatPpt({ ino: inode.ino, gen: inode.generation, seq: inode.seq, root: inode.pptRoot, level: inode.pptLevel, nodes: inode.pptNodes, size: inode.size });
}
