/**
 * Committed images go home (after the journal's barrier) so that a
 * lock-free reader of the pool (the library) never trusts a half-written
 * table: every changed inode's home record first gets an odd sequence word,
 * then the other blocks (page-table nodes among them) go home, and the inode
 * blocks last, with their new even sequence words.
 *
 * Each step stores runs of adjacent blocks with one pwritev. The odd words
 * of an inode block go in one store of the whole block as it is at home
 * with only those words changed (the other bytes are rewritten with the
 * values they hold, which no reader can tell), not one 4-byte store per
 * inode: `tar x` changes hundreds of inodes per commit.
 */
import type { Pool } from '../media/pool.js';
import { INODE_SEQ } from '../core/format/inode.js';
import { BLOCK_SIZE, INODE_SIZE, type Geometry } from '../core/format/pool.js';

export function writeHome(pool: Pool, g: Geometry, images: Array<[number, Buffer]>): void {
  const isInodeBlock = (b: number): boolean => b >= g.inodeTableStart && b < g.inodeTableStart + g.inodeTableBlocks;
  const inodeBlocks = images.filter(([b]) => isInodeBlock(b));
  const odd: Array<[number, Buffer]> = [];
  let homes: Buffer | undefined;
  inodeBlocks.forEach(([block, image], i) => {
    homes ??= Buffer.allocUnsafe(inodeBlocks.length * BLOCK_SIZE);
    const home = homes.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
    pool.readInto(block * BLOCK_SIZE, home);
    let changed = false;
    for (let off = 0; off < BLOCK_SIZE; off += INODE_SIZE) {
      const next = image.readUInt32LE(off + INODE_SEQ);
      if (home.readUInt32LE(off + INODE_SEQ) === next || next === 0) continue;
      home.writeUInt32LE((next - 1) >>> 0, off + INODE_SEQ);
      changed = true;
    }
    if (changed) odd.push([block, home]);
  });
  storeRuns(pool, odd);
  storeRuns(pool, images.filter(([b]) => !isInodeBlock(b)));
  storeRuns(pool, inodeBlocks);
}

/** Store images (in ascending block order), one pwritev per run of adjacent blocks. */
function storeRuns(pool: Pool, images: Array<[number, Buffer]>): void {
  for (let i = 0; i < images.length;) {
    let j = i + 1;
    while (j < images.length && images[j]![0] === images[j - 1]![0] + 1) j++;
    pool.writev(images[i]![0] * BLOCK_SIZE, images.slice(i, j).map(([, image]) => image));
    i = j;
  }
}
