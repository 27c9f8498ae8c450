/**
 * mkfs: lay out a new pool. The pool file is allocated on the host (unless
 * sparse) and reads as zeros, so only the superblocks, the bitmaps and the
 * root are written. A sparse pool gets host blocks for its whole metadata
 * area and the root's block here (the rest as the allocator hands blocks out).
 */
import { randomBytes } from 'node:crypto';
import { PoolError } from '../core/errors.js';
import { Pool } from '../media/pool.js';
import { ROOT_INO, S_IFDIR } from './api.js';
import { Bits } from './bitmap.js';
import { encodeInode, Inode } from './inode.js';
import { BITS_PER_BITMAP_BLOCK, BLOCK_SIZE, computeGeometry, CRC_OFFSET, FORMAT_VERSION, INODE_SIZE, INODES_PER_BLOCK, MIN_POOL_BYTES, PoolState } from '../core/format/pool.js';
import { DEFAULT_KNOBS, encodeSuperblock, type Superblock } from '../core/format/superblock.js';
import { sealCrc } from './metastore.js';

export interface MkfsOptions {
  size: number;
  force?: boolean;
  inodes?: number;
  /** Mode of the pool file (default 0600) and its group (default the caller's): see Pool.create. */
  mode?: number;
  gid?: number;
  /** Leave the pool sparse on the host (default: allocate it all now). */
  sparse?: boolean;
  /** Progress of the host allocation, in bytes. */
  onAllocate?: (done: number, total: number) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface MkfsResult {
  blocks: number;
  inodes: number;
  dataBlocks: number;
}

export function mkfs(poolPath: string, opts: MkfsOptions): MkfsResult {
  const size = Math.floor(opts.size / BLOCK_SIZE) * BLOCK_SIZE;
  if (!Number.isSafeInteger(size) || size < MIN_POOL_BYTES) {
    throw new RangeError(`pool size must be at least ${MIN_POOL_BYTES / 1024 / 1024} MiB`);
  }
  const g = computeGeometry(size, opts.inodes);
  const pool = Pool.create(poolPath, size, {
    force: opts.force,
    ...(opts.mode !== undefined ? { mode: opts.mode } : {}),
    ...(opts.gid !== undefined ? { gid: opts.gid } : {}),
    ...(opts.sparse ? { sparse: true } : {}),
    ...(opts.onAllocate ? { onAllocate: opts.onAllocate } : {}),
  });
  try {
    // Everything up to and including the root's block is "used" from the start: backed before any store.
    if (opts.sparse) reserveOrThrow(pool, (g.dataStart + 1) * BLOCK_SIZE);
    const total = g.inodeBitmapBlocks + g.blockBitmapBlocks + 3;
    let done = 0;
    const step = (): void => opts.onProgress?.(++done, total);
    const rootBlock = g.dataStart;

    const writeBitmap = (start: number, blocks: number, bits: Bits): void => {
      for (let b = 0; b < blocks; b++) {
        const image = Buffer.alloc(BLOCK_SIZE);
        const from = (b * BITS_PER_BITMAP_BLOCK) / 8;
        image.set(bits.bytes.subarray(from, Math.min(bits.bytes.length, from + CRC_OFFSET)));
        sealCrc(image);
        pool.write((start + b) * BLOCK_SIZE, image);
        step();
      }
    };
    // Bits past the end are set, so nothing is ever allocated beyond the pool.
    const blockBits = new Bits(g.blockBitmapBlocks * BITS_PER_BITMAP_BLOCK);
    blockBits.setRange(0, g.dataStart + 1, true);
    blockBits.setRange(g.totalBlocks, blockBits.size - g.totalBlocks, true);
    writeBitmap(g.blockBitmapStart, g.blockBitmapBlocks, blockBits);
    const inodeBits = new Bits(g.inodeBitmapBlocks * BITS_PER_BITMAP_BLOCK);
    inodeBits.setRange(0, ROOT_INO + 1, true);
    inodeBits.setRange(g.inodeCount, inodeBits.size - g.inodeCount, true);
    writeBitmap(g.inodeBitmapStart, g.inodeBitmapBlocks, inodeBits);

    // The root directory: one empty directory block.
    const now = Date.now();
    const root = new Inode(ROOT_INO);
    root.mode = S_IFDIR | 0o755;
    root.nlink = 2;
    root.parent = ROOT_INO;
    root.size = BLOCK_SIZE;
    root.blocks = 1;
    root.generation = 1;
    root.atimeMs = root.mtimeMs = root.ctimeMs = root.crtimeMs = now;
    root.extents.add(0, rootBlock, 1);
    const rec = Buffer.alloc(INODE_SIZE);
    encodeInode(root, rec);
    pool.write((g.inodeTableStart + Math.floor(ROOT_INO / INODES_PER_BLOCK)) * BLOCK_SIZE + (ROOT_INO % INODES_PER_BLOCK) * INODE_SIZE, rec);
    const dirBlock = Buffer.alloc(BLOCK_SIZE);
    dirBlock.writeUInt16LE(CRC_OFFSET, 4);
    sealCrc(dirBlock);
    pool.write(rootBlock * BLOCK_SIZE, dirBlock);
    step();

    const sb: Superblock = {
      version: FORMAT_VERSION, compatFeatures: 0, incompatFeatures: 0, roCompatFeatures: 0,
      geometry: g, rootIno: ROOT_INO, state: PoolState.Clean, journalSeq: 1, mountCount: 0,
      uuid: randomBytes(16), createdMs: now, lastMountMs: 0, lastWriteMs: now, knobs: { ...DEFAULT_KNOBS },
    };
    pool.persistAll();
    const image = encodeSuperblock(sb);
    pool.write(BLOCK_SIZE, image);
    step();
    pool.write(0, image);
    pool.persistAll();
    step();
    return { blocks: g.totalBlocks, inodes: g.inodeCount, dataBlocks: g.totalBlocks - g.dataStart };
  } finally {
    pool.close();
  }
}

function reserveOrThrow(pool: Pool, bytes: number): void {
  try {
    pool.reserveHost(0, bytes);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    throw new PoolError('ENOSPC', `no space on the host for the pool's metadata (${bytes} bytes) at ${pool.path}`, { path: pool.path, cause: err });
  }
}
