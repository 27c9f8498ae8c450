/**
 * The pool as a whole, format version 1: blocks, regions and their geometry.
 * docs/format.md says the same for people ("Blocks and regions").
 *
 *   block 0          primary superblock
 *   block 1          backup superblock (rewritten at mkfs, clean unmount, fsck)
 *   journal          redo journal, a linear log reset at every checkpoint
 *   inode bitmap     1 bit per inode, 32736 bits a block, CRC tail
 *   block bitmap     1 bit per pool block, 32736 bits a block, CRC tail
 *   inode table      256-byte inodes, 16 a block, each with its own CRC
 *   lease table      reserved, zeroed (a later library resolves paths with it)
 *   data             file data and per-file metadata blocks (directories,
 *                    extent chains, xattrs, long symlinks, page tables)
 */
import { constants } from './describe.js';

const BLOCK = 4096;
const CRC_TAIL = BLOCK - 4;
const INODE_BYTES = 256;

export const POOL_CONSTANTS = constants('pool', 'blocks, regions and limits of a pool', {
  FORMAT_VERSION: 1,
  /** The superblock's first 8 bytes. */
  MAGIC: 'DAXVMPL1',
  BLOCK_SIZE: BLOCK,
  BLOCK_SHIFT: 12,
  SUPERBLOCK_BLOCK: 0,
  BACKUP_SUPERBLOCK_BLOCK: 1,
  /** Metadata blocks with a CRC tail keep the CRC32C of bytes [0, CRC_OFFSET) here. */
  CRC_OFFSET: CRC_TAIL,
  BITS_PER_BITMAP_BLOCK: CRC_TAIL * 8,
  INODE_SIZE: INODE_BYTES,
  INODES_PER_BLOCK: BLOCK / INODE_BYTES,
  /** Blocks per 2 MiB huge region. */
  HUGE_BLOCKS: 512,
  LEASE_TABLE_BLOCKS: 64,
  MIN_POOL_BYTES: 16 * 1024 * 1024,
  /** Logical block numbers are 32-bit: 16 TiB less a block, as ext4 with 4 KiB blocks. */
  MAX_FILE_SIZE: 2 ** 32 * BLOCK - BLOCK,
  NAME_MAX: 255,
  ROOT_INO: 1,
  /** Superblock state word. */
  STATE_CLEAN: 0,
  STATE_MOUNTED: 1,
  STATE_ERRORS: 2,
});

export const {
  FORMAT_VERSION, MAGIC, BLOCK_SIZE, BLOCK_SHIFT, SUPERBLOCK_BLOCK, BACKUP_SUPERBLOCK_BLOCK,
  CRC_OFFSET, BITS_PER_BITMAP_BLOCK, INODE_SIZE, INODES_PER_BLOCK, HUGE_BLOCKS, LEASE_TABLE_BLOCKS,
  MIN_POOL_BYTES, MAX_FILE_SIZE, NAME_MAX, ROOT_INO,
} = POOL_CONSTANTS.values;

export enum PoolState {
  Clean = POOL_CONSTANTS.values.STATE_CLEAN,
  Mounted = POOL_CONSTANTS.values.STATE_MOUNTED,
  Errors = POOL_CONSTANTS.values.STATE_ERRORS,
}

export interface Geometry {
  totalBlocks: number;
  inodeCount: number;
  journalStart: number;
  journalBlocks: number;
  inodeBitmapStart: number;
  inodeBitmapBlocks: number;
  blockBitmapStart: number;
  blockBitmapBlocks: number;
  inodeTableStart: number;
  inodeTableBlocks: number;
  leaseTableStart: number;
  leaseTableBlocks: number;
  dataStart: number;
}

const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);

/**
 * Lay out a pool of `sizeBytes`: one inode per 16 KiB of pool unless told
 * otherwise. A pure function of its arguments: a reader recomputes it and
 * refuses a superblock that disagrees.
 */
export function computeGeometry(sizeBytes: number, inodeCount?: number): Geometry {
  const totalBlocks = Math.floor(sizeBytes / BLOCK_SIZE);
  const inodes = Math.min(2 ** 31, Math.max(1024, inodeCount ?? Math.floor(sizeBytes / 16384)));
  const roundedInodes = ceilDiv(inodes, INODES_PER_BLOCK) * INODES_PER_BLOCK;
  const journalBlocks = Math.min(8192, Math.max(256, Math.floor(totalBlocks / 256)));
  const journalStart = 2;
  const inodeBitmapStart = journalStart + journalBlocks;
  const inodeBitmapBlocks = ceilDiv(roundedInodes, BITS_PER_BITMAP_BLOCK);
  const blockBitmapStart = inodeBitmapStart + inodeBitmapBlocks;
  const blockBitmapBlocks = ceilDiv(totalBlocks, BITS_PER_BITMAP_BLOCK);
  const inodeTableStart = blockBitmapStart + blockBitmapBlocks;
  const inodeTableBlocks = roundedInodes / INODES_PER_BLOCK;
  const leaseTableStart = inodeTableStart + inodeTableBlocks;
  const dataStart = leaseTableStart + LEASE_TABLE_BLOCKS;
  return {
    totalBlocks, inodeCount: roundedInodes, journalStart, journalBlocks,
    inodeBitmapStart, inodeBitmapBlocks, blockBitmapStart, blockBitmapBlocks,
    inodeTableStart, inodeTableBlocks, leaseTableStart, leaseTableBlocks: LEASE_TABLE_BLOCKS, dataStart,
  };
}
