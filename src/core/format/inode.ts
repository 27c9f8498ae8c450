/**
 * The inode record (256 bytes, 16 a block in the inode table), its extents
 * and the extent chain of files with more than 8 of them.
 */
import { bytes, constants, f64, layout, u32, u64 } from './describe.js';
import { CRC_OFFSET } from './pool.js';

export const INODE = layout('inode', 256, 'one inode record of the inode table', {
  mode: u32(0, 'type and permission bits, as st_mode; 0 = free slot'),
  uid: u32(4, 'uid'),
  gid: u32(8, 'gid'),
  nlink: u32(12, 'link count'),
  size: u64(16, 'size in bytes'),
  blocks: u64(24, '4 KiB blocks owned (data, directory, chain, xattr, symlink blocks)'),
  atime: f64(32, 'atime (ms, double)'),
  mtime: f64(40, 'mtime (ms, double)'),
  ctime: f64(48, 'ctime (ms, double)'),
  crtime: f64(56, 'creation time (ms, double)'),
  generation: u32(64, 'generation: incremented each time the slot is reused (kept in free slots)'),
  seq: u32(68, 'sequence word: even when stable, advanced by 2 at each committed change'),
  flags: u32(72, 'flags: bit 0 = symlink target inline'),
  extent_count: u32(76, 'extent count'),
  extent_chain: u64(80, 'first extent-chain block (0 = extents inline)'),
  xattr_block: u64(88, 'xattr block (0 = none)'),
  ppt_root: u64(96, 'page-table root node block (0 = no table)'),
  ppt_level: u32(104, 'page-table root level (1 PTE, 2 PMD, 3 PUD, 4 P4D)'),
  ppt_nodes: u32(108, 'page-table node count'),
  inline_area: bytes(112, 128, 'inline area: up to 8 extents, or a symlink target of up to 128 bytes'),
  parent: u32(240, 'parent directory (directories only)'),
  rdev: u32(244, 'rdev (device files)'),
  crc: u32(252, 'CRC32C of bytes [0, 252)'),
}, { algorithm: 'crc32c', from: 0, to: 252, at: 'crc' });

export const {
  mode: INODE_MODE, uid: INODE_UID, gid: INODE_GID, nlink: INODE_NLINK, size: INODE_SIZE_BYTES,
  blocks: INODE_BLOCKS, atime: INODE_ATIME, mtime: INODE_MTIME, ctime: INODE_CTIME, crtime: INODE_CRTIME,
  generation: INODE_GENERATION, seq: INODE_SEQ, flags: INODE_FLAGS, extent_count: INODE_EXTENT_COUNT,
  extent_chain: INODE_EXTENT_CHAIN, xattr_block: INODE_XATTR_BLOCK, ppt_root: INODE_PPT_ROOT,
  ppt_level: INODE_PPT_LEVEL, ppt_nodes: INODE_PPT_NODES, inline_area: INODE_INLINE, parent: INODE_PARENT,
  rdev: INODE_RDEV, crc: INODE_CRC,
} = INODE.off;

/** An extent: `count` blocks of the file from `logical` live at pool block `physical` onward. */
export const EXTENT = layout('extent', 16, 'one extent, inline in the inode or in a chain block', {
  logical: u32(0, 'logical block'),
  count: u32(4, 'block count'),
  physical: u64(8, 'physical block'),
});

export const { logical: EXTENT_LOGICAL, count: EXTENT_COUNT, physical: EXTENT_PHYSICAL } = EXTENT.off;

/** The head of an extent-chain block; entries of 16 bytes follow from `entries`, a CRC tail closes it. */
export const EXTENT_CHAIN = layout('extent_chain', 32, 'the header of an extent-chain block', {
  magic: u32(0, "magic 'DXEX' (0x58455844)"),
  ino: u32(4, 'inode number'),
  next: u64(8, 'next block (0 at the end)'),
  count: u32(16, 'entries in this block'),
});

export const { magic: CHAIN_MAGIC_AT, ino: CHAIN_INO, next: CHAIN_NEXT, count: CHAIN_COUNT } = EXTENT_CHAIN.off;

const INLINE_AREA_BYTES = 128;

export const INODE_CONSTANTS = constants('inode', 'inode flags and the sizes of the inline area and of extent chains', {
  INODE_FLAG_INLINE_SYMLINK: 1,
  INLINE_BYTES: INLINE_AREA_BYTES,
  INLINE_EXTENTS: INLINE_AREA_BYTES / EXTENT.size,
  CHAIN_MAGIC: 0x58455844,
  CHAIN_HEADER: EXTENT_CHAIN.size,
  EXTENTS_PER_CHAIN_BLOCK: Math.floor((CRC_OFFSET - EXTENT_CHAIN.size) / EXTENT.size),
});

export const {
  INODE_FLAG_INLINE_SYMLINK, INLINE_BYTES, INLINE_EXTENTS, CHAIN_MAGIC, CHAIN_HEADER, EXTENTS_PER_CHAIN_BLOCK,
} = INODE_CONSTANTS.values;
