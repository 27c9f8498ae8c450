/**
 * File data: read, write, truncate, open/release, fsync.
 *
 * New blocks are zeroed where the write does not cover them before anything
 * points at them (and the commit's barrier makes that durable with the
 * pointer). Bytes past EOF in the last block are zeroed when the file grows
 * over them, not when it shrinks: a shrink that a crash undoes must find its
 * bytes intact, so growth over a shrink that is not yet committed commits
 * first.
 */
import { FsError, S_IFDIR, S_IFREG } from './api.js';
import type { FsCore } from './core.js';
import type { Inode } from './inode.js';
import { BLOCK_SIZE, HUGE_BLOCKS, MAX_FILE_SIZE } from '../core/format/pool.js';

const HUGE_BYTES = HUGE_BLOCKS * BLOCK_SIZE;
const DAY_MS = 24 * 3600 * 1000;

export function regular(core: FsCore, ino: number): Inode {
  const inode = core.inode(ino);
  if (inode.type === S_IFDIR) throw new FsError('EISDIR', 'is a directory');
  if (inode.type !== S_IFREG) throw new FsError('EINVAL', 'not a regular file');
  return inode;
}

export function open(core: FsCore, ino: number): void {
  core.inode(ino).openCount++;
}

export function release(core: FsCore, ino: number): void {
  const inode = core.inode(ino);
  if (inode.openCount <= 0) return;
  inode.openCount--;
  if (inode.openCount > 0) return;
  if (inode.nlink === 0 && !core.readOnly) core.reapIfUnused(inode);
}

export function read(core: FsCore, ino: number, position: number, dst: Buffer): number {
  const inode = regular(core, ino);
  if (position >= inode.size || dst.length === 0) return 0;
  const length = Math.min(dst.length, inode.size - position);
  const first = Math.floor(position / BLOCK_SIZE);
  const last = Math.floor((position + length - 1) / BLOCK_SIZE);
  let done = 0;
  for (const seg of inode.extents.map(first, last - first + 1)) {
    const segStart = Math.max(position, seg.logical * BLOCK_SIZE);
    const segEnd = Math.min(position + length, (seg.logical + seg.count) * BLOCK_SIZE);
    const n = segEnd - segStart;
    if (seg.physical < 0) dst.fill(0, done, done + n);
    else core.pool.readInto(seg.physical * BLOCK_SIZE + (segStart - seg.logical * BLOCK_SIZE), dst, done, n);
    done += n;
  }
  // relatime, as ext4 mounts by default.
  const now = Date.now();
  if (!core.readOnly && (inode.atimeMs <= inode.mtimeMs || inode.atimeMs <= inode.ctimeMs || now - inode.atimeMs > DAY_MS)) {
    inode.atimeMs = now;
    core.save(inode);
  }
  return length;
}

/** Zero [from, to) of the file where blocks are mapped (stale bytes past an old EOF). */
export function zeroMapped(core: FsCore, inode: Inode, from: number, to: number): void {
  if (to <= from) return;
  if (inode.shrunkSinceCommit) core.commit();
  const first = Math.floor(from / BLOCK_SIZE);
  const last = Math.floor((to - 1) / BLOCK_SIZE);
  for (const seg of inode.extents.map(first, last - first + 1)) {
    if (seg.physical < 0) continue;
    const a = Math.max(from, seg.logical * BLOCK_SIZE);
    const b = Math.min(to, (seg.logical + seg.count) * BLOCK_SIZE);
    core.pool.fill(seg.physical * BLOCK_SIZE + (a - seg.logical * BLOCK_SIZE), b - a, 0);
  }
  core.vouch.note(inode, from, to);
  core.dataDirty = true;
  core.dataOrdered = true;
}

/** Zero the stale tail of the block holding the old EOF, up to `upTo`. */
export function zeroStaleTail(core: FsCore, inode: Inode, upTo: number): void {
  const old = inode.size;
  if (old % BLOCK_SIZE === 0 || upTo <= old) return;
  zeroMapped(core, inode, old, Math.min(upTo, (Math.floor(old / BLOCK_SIZE) + 1) * BLOCK_SIZE));
}

/**
 * A file that grows past 2 MiB while its first blocks sit unaligned moves
 * them once into an aligned 2 MiB region, so every aligned 2 MiB of the file
 * is one aligned 2 MiB of the pool.
 *
 * Never a leased file: a mapping of the pool (the library's) reaches the
 * old blocks directly and would go on seeing them while the file's bytes
 * live elsewhere. Open handles do not matter (they read through the daemon).
 * A leased file stays where it is (unaligned: its first 2 MiB get PTE
 * entries instead of one huge entry).
 */
export function alignForHuge(core: FsCore, inode: Inode): boolean {
  const items = inode.extents.items;
  const last = items.at(-1);
  if (!last) return false;
  if (last.logical + last.count > HUGE_BLOCKS) return false;
  if (items.every((e) => (e.physical - e.logical) % HUGE_BLOCKS === 0)) return false;
  if (core.leased(items.map((e) => ({ start: e.physical, count: e.count })))) return false;
  let runs;
  try {
    runs = core.alloc.allocate({ count: HUGE_BLOCKS, alignLogical: 0 });
  } catch {
    return false; // No aligned room: stay as we are.
  }
  const first = runs[0];
  const contiguous = runs.every((r, i) => {
    const prev = runs[i - 1];
    return !prev || r.start === prev.start + prev.count;
  });
  if (!first || !contiguous || first.start % HUGE_BLOCKS !== 0) {
    for (const r of runs) core.alloc.freeUncommitted(r);
    return false;
  }
  const base = first.start;
  const mapped = inode.extents.map(0, HUGE_BLOCKS);
  for (const seg of mapped) {
    const to = (base + seg.logical) * BLOCK_SIZE;
    if (seg.physical < 0) {
      if (!runs.every((r) => r.zeroed)) core.pool.fill(to, seg.count * BLOCK_SIZE, 0);
    }
    else core.pool.copyWithin(to, seg.physical * BLOCK_SIZE, seg.count * BLOCK_SIZE);
  }
  const old = inode.extents.truncate(0);
  inode.extents.add(0, base, HUGE_BLOCKS);
  inode.blocks += HUGE_BLOCKS;
  // The old blocks' contents now live in the new region: free them after the commit.
  core.dropBlocks(inode, old);
  core.vouch.noteUntracked(); // 2 MiB moved: more than a commit vouches for
  core.dataDirty = true;
  core.dataOrdered = true;
  return true;
}

/**
 * New blocks must read as zeros wherever the write does not cover them.
 * Pre-zeroed blocks need nothing. Otherwise the zeros go to the media with
 * the data (writePadded: one pwritev per piece): the bytes left between the
 * first block's start and the write, and between the write's end and the
 * last block's end. Whatever `zeroout_blocks` says, that is what ends up on
 * the media: with 1 every new block is zeroed whole on this path
 * (upstream's behaviour), the parts the data covers at once overwritten by
 * it, so it counts whole blocks as zeroed synchronously; with 0 only what
 * the write leaves uncovered counts. Returns the zero bytes to store before
 * the write's start and after its end.
 */
function zeroFresh(core: FsCore, fresh: Fresh[], start: number, end: number): { before: number; after: number } {
  const whole = core.sb.knobs.zerooutBlocks === 1;
  let before = 0;
  let after = 0;
  for (const f of fresh) {
    if (f.zeroed) continue;
    const a = f.logical * BLOCK_SIZE;
    const b = (f.logical + f.count) * BLOCK_SIZE;
    if (whole) core.stats.blocksZeroedSync += f.count;
    // A fresh run lies within the write's blocks: only the first can start before it, only the last end after it.
    if (start > a) {
      before = Math.min(start, b) - a;
      if (!whole) core.stats.blocksZeroedSync += Math.ceil(before / BLOCK_SIZE);
    }
    if (end < b) {
      after = b - Math.max(end, a);
      if (!whole) core.stats.blocksZeroedSync += Math.ceil(after / BLOCK_SIZE);
    }
  }
  return { before, after };
}

interface Fresh { logical: number; physical: number; count: number; zeroed: boolean }

export function write(core: FsCore, ino: number, position: number, src: Buffer): number {
  core.requireWritable();
  const inode = regular(core, ino);
  if (src.length === 0) return 0;
  if (position >= MAX_FILE_SIZE) throw new FsError('EFBIG', 'file too large');
  let length = Math.min(src.length, MAX_FILE_SIZE - position);
  if (position > inode.size) zeroStaleTail(core, inode, position);
  const moved = position + length > HUGE_BYTES && inode.size <= HUGE_BYTES && alignForHuge(core, inode);

  // Allocate the holes the write covers, in order; on ENOSPC keep what fits.
  const first = Math.floor(position / BLOCK_SIZE);
  const lastBlock = Math.floor((position + length - 1) / BLOCK_SIZE);
  const big = Math.max(inode.size, position + length) >= HUGE_BYTES;
  const fresh: Fresh[] = [];
  let limit = lastBlock + 1;
  for (const seg of inode.extents.map(first, lastBlock - first + 1)) {
    if (seg.physical >= 0) continue;
    let logical = seg.logical;
    let want = seg.count;
    try {
      while (want > 0) {
        const runs = core.alloc.allocate({
          count: want,
          goal: inode.extents.goalFor(logical),
          alignLogical: big ? logical : undefined,
          partial: true,
        });
        for (const run of runs) {
          inode.extents.add(logical, run.start, run.count);
          inode.blocks += run.count;
          fresh.push({ logical, physical: run.start, count: run.count, zeroed: !!run.zeroed });
          logical += run.count;
          want -= run.count;
        }
      }
    } catch (err) {
      if (!(err instanceof FsError) || err.code !== 'ENOSPC') throw err;
      limit = logical;
      break;
    }
  }
  if (limit <= lastBlock) {
    length = Math.min(length, limit * BLOCK_SIZE - position);
    if (length <= 0) {
      if (fresh.length) core.save(inode);
      throw new FsError('ENOSPC', 'no space left in the pool');
    }
  }
  const pad = zeroFresh(core, fresh, position, position + length);
  // Store the data, with the zeros new blocks need around it.
  let done = 0;
  for (const seg of inode.extents.map(first, Math.floor((position + length - 1) / BLOCK_SIZE) - first + 1)) {
    const segStart = Math.max(position, seg.logical * BLOCK_SIZE);
    const segEnd = Math.min(position + length, (seg.logical + seg.count) * BLOCK_SIZE);
    const before = done === 0 ? pad.before : 0;
    const after = segEnd === position + length ? pad.after : 0;
    const at = seg.physical * BLOCK_SIZE + (segStart - seg.logical * BLOCK_SIZE);
    core.pool.writePadded(at - before, before, src.subarray(done, done + segEnd - segStart), after);
    done += segEnd - segStart;
  }
  const now = Date.now();
  // Bytes past the old end (in a block already mapped or not) become reachable with the new size: ordered too.
  const grows = position + length > inode.size;
  // For a commit that vouches (vouch.ts): the bytes stored (in place too: when the commit is durable, so
  // are they), [old size, new size) (a later append stores past it), new blocks whole (their zeros too).
  core.vouch.note(inode, position, position + length);
  if (grows) core.vouch.note(inode, inode.size, position + length);
  for (const f of fresh) core.vouch.note(inode, f.logical * BLOCK_SIZE, (f.logical + f.count) * BLOCK_SIZE);
  inode.size = Math.max(inode.size, position + length);
  inode.mtimeMs = inode.ctimeMs = now;
  if (moved) core.syncTables(inode, 0, Math.max(HUGE_BLOCKS, limit));
  else if (fresh[0]) core.syncTables(inode, fresh[0].logical, limit);
  else core.syncTables(inode, 0, 0);
  core.save(inode);
  core.dataDirty = true;
  if (fresh.length || moved || grows) core.dataOrdered = true;
  return length;
}

export function truncate(core: FsCore, ino: number, size: number): Inode {
  core.requireWritable();
  const inode = regular(core, ino);
  if (size < 0 || !Number.isInteger(size)) throw new FsError('EINVAL', 'bad size');
  // Before any safe-integer test: sizes near 2^63 arrive rounded (a double), and ext4 answers EFBIG.
  if (size > MAX_FILE_SIZE) throw new FsError('EFBIG', `file too large: ${size} bytes, the most is ${MAX_FILE_SIZE}`);
  // Blocks preallocated past EOF (fallocate --keep-size) go at a truncate to
  // the same size or less, as ext4's: their entries are synced too.
  const oldBlocks = Math.max(Math.ceil(inode.size / BLOCK_SIZE), mappedEnd(inode));
  const newBlocks = Math.ceil(size / BLOCK_SIZE);
  if (size <= inode.size) {
    core.dropBlocks(inode, inode.extents.truncate(newBlocks));
    if (size < inode.size) core.noteShrunk(inode);
  } else {
    zeroStaleTail(core, inode, size);
  }
  const now = Date.now();
  inode.size = size;
  inode.mtimeMs = inode.ctimeMs = now;
  core.syncTables(inode, newBlocks, Math.max(newBlocks, oldBlocks));
  core.save(inode);
  return inode;
}

/** One past the last mapped logical block (0 for none): past EOF after fallocate --keep-size. */
export function mappedEnd(inode: Inode): number {
  const last = inode.extents.items[inode.extents.items.length - 1];
  return last ? last.logical + last.count : 0;
}

export function fsync(core: FsCore, ino: number): void {
  core.inode(ino);
  core.commit();
  core.prewriter.kick();
}
