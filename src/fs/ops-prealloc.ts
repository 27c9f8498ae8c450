/**
 * fallocate(2): preallocation (mode 0, FALLOC_FL_KEEP_SIZE), hole punching
 * (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) and range zeroing
 * (FALLOC_FL_ZERO_RANGE), with ext4's errno for the rest.
 *
 * Preallocated blocks read as zeros: they come pre-zeroed from the
 * background zeroer when `zeroout_blocks` is 0 and it has some, else they
 * are zeroed here, synchronously, as a write of zeros would (and counted the
 * same way). This is what DaxVM's append path wants: a new file is
 * fallocated and mapped, with no copy, on blocks that are already zero.
 *
 * All or nothing: the space is checked before anything changes, so ENOSPC
 * leaves the file and the free space as they were. The new extents, the size
 * and the page-table entries are one transaction, as a write's allocation.
 *
 * KEEP_SIZE may leave blocks past EOF (as ext4 does): they read as zeros,
 * count in st_blocks, go when the file is truncated below them, and the page
 * table maps those within the reach of its root level (docs/format.md).
 */
import { FsError, S_IFDIR, S_IFREG } from './api.js';
import type { FsCore } from './core.js';
import type { Inode } from './inode.js';
import { BLOCK_SIZE, HUGE_BLOCKS, MAX_FILE_SIZE } from '../core/format/pool.js';
import { alignForHuge, regular, zeroMapped, zeroStaleTail } from './ops-data.js';

/** <linux/falloc.h> */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_COLLAPSE_RANGE = 0x08;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;

const HUGE_BYTES = HUGE_BLOCKS * BLOCK_SIZE;

interface Fresh {
  logical: number;
  physical: number;
  count: number;
  zeroed: boolean;
}

/** The inode, if fallocate applies to it (ext4 and the VFS: EISDIR for a directory, ENODEV for other non-regular files). */
function target(core: FsCore, ino: number): Inode {
  const inode = core.inode(ino);
  if (inode.type === S_IFDIR) throw new FsError('EISDIR', 'fallocate on a directory');
  if (inode.type !== S_IFREG) throw new FsError('ENODEV', 'fallocate on a file that is not regular');
  return inode;
}

/** Range and mode checks, as the VFS makes them before it looks at the file. */
function check(mode: number, offset: number, length: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length <= 0) {
    throw new FsError('EINVAL', `bad range: offset ${offset}, length ${length} (offset >= 0, length > 0)`);
  }
  if (!Number.isInteger(mode) || mode < 0) throw new FsError('EINVAL', `bad mode ${mode}`);
  const keep = mode & FALLOC_FL_KEEP_SIZE;
  const rest = mode & ~FALLOC_FL_KEEP_SIZE;
  if (rest === FALLOC_FL_PUNCH_HOLE && !keep) throw new FsError('EOPNOTSUPP', 'FALLOC_FL_PUNCH_HOLE needs FALLOC_FL_KEEP_SIZE');
  if (rest !== 0 && rest !== FALLOC_FL_PUNCH_HOLE && rest !== FALLOC_FL_ZERO_RANGE) {
    throw new FsError('EOPNOTSUPP', `fallocate mode 0x${mode.toString(16)} is not supported (only 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE)`);
  }
}

export function fallocate(core: FsCore, ino: number, mode: number, offset: number, length: number): Inode {
  core.requireWritable();
  check(mode, offset, length);
  const inode = target(core, ino);
  // No sum before this test: offsets near 2^63 arrive rounded (a double).
  if (offset > MAX_FILE_SIZE || length > MAX_FILE_SIZE - offset) {
    throw new FsError('EFBIG', `offset + length past the largest file size, ${MAX_FILE_SIZE} bytes`);
  }
  if (mode & FALLOC_FL_PUNCH_HOLE) punch(core, inode, offset, offset + length);
  else allocate(core, inode, offset, offset + length, (mode & FALLOC_FL_KEEP_SIZE) !== 0, (mode & FALLOC_FL_ZERO_RANGE) !== 0);
  core.save(inode);
  return inode;
}

/** Mode 0, KEEP_SIZE, ZERO_RANGE: blocks behind every byte of [start, end), reading as zeros where new (everywhere for ZERO_RANGE). */
function allocate(core: FsCore, inode: Inode, start: number, end: number, keepSize: boolean, zeroRange: boolean): void {
  const first = Math.floor(start / BLOCK_SIZE);
  const last = Math.ceil(end / BLOCK_SIZE); // exclusive
  const need = inode.extents.map(first, last - first).reduce((n, s) => n + (s.physical < 0 ? s.count : 0), 0);
  const room = (): number => core.alloc.freeNow - core.alloc.reserve;
  if (need > room()) throw new FsError('ENOSPC', `no space left in the pool: ${need} blocks needed, ${Math.max(0, room())} free`);

  const grows = !keepSize && end > inode.size;
  // Stale bytes past the old EOF become file bytes: zeros (may commit first, so before anything is allocated).
  if (grows) zeroStaleTail(core, inode, end);
  if (zeroRange) zeroMapped(core, inode, start, end);
  // As a write: a file growing past 2 MiB from unaligned blocks moves into an aligned region, when that still leaves room.
  const moved = end > HUGE_BYTES && inode.size <= HUGE_BYTES && room() >= need + HUGE_BLOCKS && alignForHuge(core, inode);

  const fresh = allocateHoles(core, inode, first, last, Math.max(inode.size, end) >= HUGE_BYTES);
  for (const f of fresh) {
    if (f.zeroed) continue;
    core.pool.fill(f.physical * BLOCK_SIZE, f.count * BLOCK_SIZE, 0);
    core.stats.blocksZeroedSync += f.count;
  }
  if (fresh.length || moved || zeroRange) core.dataDirty = true;
  if (fresh.length || moved) {
    core.dataOrdered = true;
    core.vouch.noteUntracked(); // fallocate's blocks: an ordered commit (a big range's barrier is amortised)
  }

  const now = Date.now();
  if (grows) inode.size = end;
  if (grows || zeroRange) inode.mtimeMs = now;
  inode.ctimeMs = now;
  if (moved) core.syncTables(inode, 0, Math.max(HUGE_BLOCKS, last));
  else if (fresh[0]) core.syncTables(inode, fresh[0].logical, last);
  else core.syncTables(inode, 0, 0); // the size may have changed the root's level
}

/**
 * Fill the holes of logical [first, last). The caller checked the room, so
 * this does not fail for want of space; should anything else fail, every
 * block taken is given back and the extents are as before.
 */
function allocateHoles(core: FsCore, inode: Inode, first: number, last: number, big: boolean): Fresh[] {
  const holes = inode.extents.map(first, last - first).filter((s) => s.physical < 0);
  if (!holes.length) return [];
  const before = inode.extents.items.map((e) => ({ ...e }));
  const blocksBefore = inode.blocks;
  const fresh: Fresh[] = [];
  try {
    for (const hole of holes) {
      let logical = hole.logical;
      const end = hole.logical + hole.count;
      while (logical < end) {
        // Large files: one request per aligned 2 MiB of the file, so each lands on physical ≡ logical (mod 512).
        const count = big ? Math.min(end - logical, HUGE_BLOCKS - (logical % HUGE_BLOCKS)) : end - logical;
        const runs = core.alloc.allocate({ count, goal: inode.extents.goalFor(logical), alignLogical: big ? logical : undefined });
        for (const run of runs) {
          inode.extents.add(logical, run.start, run.count);
          inode.blocks += run.count;
          fresh.push({ logical, physical: run.start, count: run.count, zeroed: !!run.zeroed });
          logical += run.count;
        }
      }
    }
  } catch (err) {
    for (const f of fresh) core.alloc.freeUncommitted({ start: f.physical, count: f.count });
    inode.extents.items = before;
    inode.blocks = blocksBefore;
    throw err;
  }
  return fresh;
}

/**
 * PUNCH_HOLE | KEEP_SIZE: whole blocks in [start, end) are unmapped (freed
 * at the commit, open handles or not, as ext4; only blocks a library
 * mapping's lease covers wait for the lease to go: see dropBlocks); the
 * partial blocks at the ends have their bytes in the range zeroed. The size
 * never changes.
 */
function punch(core: FsCore, inode: Inode, start: number, end: number): void {
  const firstWhole = Math.ceil(start / BLOCK_SIZE);
  const endWhole = Math.floor(end / BLOCK_SIZE);
  if (firstWhole > endWhole) {
    zeroMapped(core, inode, start, end); // within one block
  } else {
    zeroMapped(core, inode, start, firstWhole * BLOCK_SIZE);
    zeroMapped(core, inode, endWhole * BLOCK_SIZE, end);
  }
  if (endWhole > firstWhole) {
    const dropped = inode.extents.punch(firstWhole, endWhole - firstWhole);
    if (dropped.length) {
      core.dropBlocks(inode, dropped);
      core.syncTables(inode, firstWhole, endWhole);
    }
  }
  inode.mtimeMs = inode.ctimeMs = Date.now();
}

/** SEEK_DATA / SEEK_HOLE over the file's mapped blocks (FileSystemApi.seekData). */
export function seekData(core: FsCore, ino: number, offset: number, whence: 3 | 4): number {
  const inode = regular(core, ino);
  if (offset < 0 || offset >= inode.size) throw new FsError('ENXIO', 'offset at or past the end of the file');
  const block = Math.floor(offset / BLOCK_SIZE);
  let pos = offset;
  for (const e of inode.extents.items) {
    const start = e.logical * BLOCK_SIZE;
    const end = (e.logical + e.count) * BLOCK_SIZE;
    if (e.logical + e.count <= block) continue;
    if (whence === 3) return Math.max(pos, start) < inode.size ? Math.max(pos, start) : fail();
    // SEEK_HOLE: extents are sorted; contiguous ones hold data without a gap.
    if (start > pos) break;
    pos = Math.max(pos, end);
  }
  if (whence === 3) fail();
  return Math.min(pos, inode.size);
}

function fail(): never {
  throw new FsError('ENXIO', 'no data at or after the offset');
}
