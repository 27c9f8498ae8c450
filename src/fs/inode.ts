/**
 * Inodes: the in-memory object and its codec to the 256-byte record whose
 * layout is src/core/format/inode.ts (docs/format.md, "Inodes").
 */
import { crc32c } from '../core/format/checksum.js';
import { readU64, writeU64 } from '../core/format/u64.js';
import {
  EXTENT_COUNT, EXTENT_LOGICAL, EXTENT_PHYSICAL, EXTENT, INLINE_BYTES, INLINE_EXTENTS, INODE_ATIME, INODE_BLOCKS,
  INODE_CRC, INODE_CRTIME, INODE_CTIME, INODE_EXTENT_CHAIN, INODE_EXTENT_COUNT, INODE_FLAG_INLINE_SYMLINK, INODE_FLAGS,
  INODE_GENERATION, INODE_GID, INODE_INLINE, INODE_MODE, INODE_MTIME, INODE_NLINK, INODE_PARENT, INODE_PPT_LEVEL,
  INODE_PPT_NODES, INODE_PPT_ROOT, INODE_RDEV, INODE_SEQ, INODE_SIZE_BYTES, INODE_UID, INODE_XATTR_BLOCK,
} from '../core/format/inode.js';
import { S_IFMT } from '../core/format/mode.js';
import type { Directory } from './dir.js';
import { ExtentList, type Extent } from './extents.js';

const EXTENT_BYTES = EXTENT.size;

export class Inode {
  mode = 0;
  uid = 0;
  gid = 0;
  nlink = 0;
  size = 0;
  blocks = 0;
  atimeMs = 0;
  mtimeMs = 0;
  ctimeMs = 0;
  crtimeMs = 0;
  generation = 0;
  seq = 0;
  flags = 0;
  extentChain = 0;
  xattrBlock = 0;
  pptRoot = 0;
  pptLevel = 0;
  pptNodes = 0;
  parent = 0;
  rdev = 0;
  inline: Buffer = Buffer.alloc(0);

  // Memory only.
  extents = new ExtentList();
  /** Blocks of the extent chain, in chain order. */
  chainBlocks: number[] = [];
  xattrs: Map<string, Buffer> | null = null;
  dir: Directory | null = null;
  /** Open handles (and other pins): an unlinked inode lives while > 0. */
  openCount = 0;
  /** Size shrank in the running transaction (tail zeroing must wait for a commit). */
  shrunkSinceCommit = false;

  constructor(readonly ino: number) {}

  get type(): number {
    return this.mode & S_IFMT;
  }
}

/** Decode a record; returns null when the CRC does not match. */
export function decodeInode(ino: number, rec: Buffer, extentsFromChain: (head: number, count: number) => { items: Extent[]; chain: number[] }): Inode | null {
  if (rec.readUInt32LE(INODE_CRC) !== crc32c(rec.subarray(0, INODE_CRC))) return null;
  const n = new Inode(ino);
  n.mode = rec.readUInt32LE(INODE_MODE);
  n.uid = rec.readUInt32LE(INODE_UID);
  n.gid = rec.readUInt32LE(INODE_GID);
  n.nlink = rec.readUInt32LE(INODE_NLINK);
  n.size = readU64(rec, INODE_SIZE_BYTES);
  // A count no file can have (damage) stays encodable; fsck sets it right.
  n.blocks = Math.min(readU64(rec, INODE_BLOCKS), Number.MAX_SAFE_INTEGER);
  n.atimeMs = rec.readDoubleLE(INODE_ATIME);
  n.mtimeMs = rec.readDoubleLE(INODE_MTIME);
  n.ctimeMs = rec.readDoubleLE(INODE_CTIME);
  n.crtimeMs = rec.readDoubleLE(INODE_CRTIME);
  n.generation = rec.readUInt32LE(INODE_GENERATION);
  n.seq = rec.readUInt32LE(INODE_SEQ);
  n.flags = rec.readUInt32LE(INODE_FLAGS);
  const extentCount = rec.readUInt32LE(INODE_EXTENT_COUNT);
  n.extentChain = readU64(rec, INODE_EXTENT_CHAIN);
  n.xattrBlock = readU64(rec, INODE_XATTR_BLOCK);
  n.pptRoot = readU64(rec, INODE_PPT_ROOT);
  n.pptLevel = rec.readUInt32LE(INODE_PPT_LEVEL);
  n.pptNodes = rec.readUInt32LE(INODE_PPT_NODES);
  n.parent = rec.readUInt32LE(INODE_PARENT);
  n.rdev = rec.readUInt32LE(INODE_RDEV);
  if (n.flags & INODE_FLAG_INLINE_SYMLINK) {
    n.inline = Buffer.from(rec.subarray(INODE_INLINE, INODE_INLINE + Math.min(INLINE_BYTES, n.size)));
  } else if (extentCount <= INLINE_EXTENTS && n.extentChain === 0) {
    const items: Extent[] = [];
    for (let i = 0; i < extentCount; i++) items.push(readExtent(rec, INODE_INLINE + i * EXTENT_BYTES));
    n.extents = new ExtentList(items);
  } else {
    const { items, chain } = extentsFromChain(n.extentChain, extentCount);
    n.extents = new ExtentList(items);
    n.chainBlocks = chain;
  }
  return n;
}

/** Encode into `rec` (256 bytes). Extents go inline when there is no chain. */
export function encodeInode(n: Inode, rec: Buffer): void {
  rec.fill(0);
  rec.writeUInt32LE(n.mode, INODE_MODE);
  rec.writeUInt32LE(n.uid, INODE_UID);
  rec.writeUInt32LE(n.gid, INODE_GID);
  rec.writeUInt32LE(n.nlink, INODE_NLINK);
  writeU64(rec, INODE_SIZE_BYTES, n.size);
  writeU64(rec, INODE_BLOCKS, n.blocks);
  rec.writeDoubleLE(n.atimeMs, INODE_ATIME);
  rec.writeDoubleLE(n.mtimeMs, INODE_MTIME);
  rec.writeDoubleLE(n.ctimeMs, INODE_CTIME);
  rec.writeDoubleLE(n.crtimeMs, INODE_CRTIME);
  rec.writeUInt32LE(n.generation >>> 0, INODE_GENERATION);
  rec.writeUInt32LE(n.seq >>> 0, INODE_SEQ);
  rec.writeUInt32LE(n.flags, INODE_FLAGS);
  rec.writeUInt32LE(n.extents.length, INODE_EXTENT_COUNT);
  writeU64(rec, INODE_EXTENT_CHAIN, n.extentChain);
  writeU64(rec, INODE_XATTR_BLOCK, n.xattrBlock);
  writeU64(rec, INODE_PPT_ROOT, n.pptRoot);
  rec.writeUInt32LE(n.pptLevel, INODE_PPT_LEVEL);
  rec.writeUInt32LE(n.pptNodes, INODE_PPT_NODES);
  if (n.flags & INODE_FLAG_INLINE_SYMLINK) {
    n.inline.copy(rec, INODE_INLINE, 0, INLINE_BYTES);
  } else if (n.extentChain === 0) {
    n.extents.items.forEach((e, i) => writeExtent(rec, INODE_INLINE + i * EXTENT_BYTES, e));
  }
  rec.writeUInt32LE(n.parent, INODE_PARENT);
  rec.writeUInt32LE(n.rdev >>> 0, INODE_RDEV);
  rec.writeUInt32LE(crc32c(rec.subarray(0, INODE_CRC)), INODE_CRC);
}

export function readExtent(b: Buffer, off: number): Extent {
  return { logical: b.readUInt32LE(off + EXTENT_LOGICAL), count: b.readUInt32LE(off + EXTENT_COUNT), physical: readU64(b, off + EXTENT_PHYSICAL) };
}

export function writeExtent(b: Buffer, off: number, e: Extent): void {
  b.writeUInt32LE(e.logical, off + EXTENT_LOGICAL);
  b.writeUInt32LE(e.count, off + EXTENT_COUNT);
  writeU64(b, off + EXTENT_PHYSICAL, e.physical);
}
