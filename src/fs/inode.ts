/**
 * Inodes: the 256-byte on-media record and the in-memory object.
 *
 *   0 mode u32   4 uid u32   8 gid u32   12 nlink u32
 *  16 size u64  24 blocks u64 (4 KiB blocks: data and per-file metadata)
 *  32 atime f64 40 mtime f64 48 ctime f64 56 crtime f64 (ms since the epoch)
 *  64 generation u32        68 seq u32 (even = stable; lock-free readers)
 *  72 flags u32             76 extent count u32
 *  80 extent chain u64      88 xattr block u64
 *  96 page-table root u64  104 page-table level u32  108 page-table nodes u32
 * 112 inline area, 128 bytes: up to 8 extents (logical u32, count u32,
 *     physical u64) or a symlink target of up to 128 bytes
 * 240 parent u32 (directories)  244 rdev u32  248 reserved  252 CRC32C of [0,252)
 */
import { crc32c } from './checksum.js';
import type { Directory } from './dir.js';
import { ExtentList, type Extent } from './extents.js';
import type { Run } from './alloc.js';
import { INODE_SIZE } from './layout.js';

export const INLINE_EXTENTS = 8;
export const INLINE_BYTES = 128;
const INLINE_OFFSET = 112;
const CRC_AT = INODE_SIZE - 4;

export const INODE_FLAG_INLINE_SYMLINK = 1;
/** Where a record keeps its extent count (u32). */
export const EXTENT_COUNT_OFFSET = 76;

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
  /** Open handles (and other pins): blocks live while > 0. */
  openCount = 0;
  /** Blocks dropped while open: freed at the last release. */
  deferredFree: Run[] = [];
  /** Size shrank in the running transaction (tail zeroing must wait for a commit). */
  shrunkSinceCommit = false;

  constructor(readonly ino: number) {}

  get type(): number {
    return this.mode & 0o170000;
  }
}

/** Decode a record; returns null when the CRC does not match. */
export function decodeInode(ino: number, rec: Buffer, extentsFromChain: (head: number, count: number) => { items: Extent[]; chain: number[] }): Inode | null {
  if (rec.readUInt32LE(CRC_AT) !== crc32c(rec.subarray(0, CRC_AT))) return null;
  const n = new Inode(ino);
  n.mode = rec.readUInt32LE(0);
  n.uid = rec.readUInt32LE(4);
  n.gid = rec.readUInt32LE(8);
  n.nlink = rec.readUInt32LE(12);
  n.size = Number(rec.readBigUInt64LE(16));
  // A count no file can have (damage) stays encodable; fsck sets it right.
  n.blocks = Math.min(Number(rec.readBigUInt64LE(24)), Number.MAX_SAFE_INTEGER);
  n.atimeMs = rec.readDoubleLE(32);
  n.mtimeMs = rec.readDoubleLE(40);
  n.ctimeMs = rec.readDoubleLE(48);
  n.crtimeMs = rec.readDoubleLE(56);
  n.generation = rec.readUInt32LE(64);
  n.seq = rec.readUInt32LE(68);
  n.flags = rec.readUInt32LE(72);
  const extentCount = rec.readUInt32LE(76);
  n.extentChain = Number(rec.readBigUInt64LE(80));
  n.xattrBlock = Number(rec.readBigUInt64LE(88));
  n.pptRoot = Number(rec.readBigUInt64LE(96));
  n.pptLevel = rec.readUInt32LE(104);
  n.pptNodes = rec.readUInt32LE(108);
  n.parent = rec.readUInt32LE(240);
  n.rdev = rec.readUInt32LE(244);
  if (n.flags & INODE_FLAG_INLINE_SYMLINK) {
    n.inline = Buffer.from(rec.subarray(INLINE_OFFSET, INLINE_OFFSET + Math.min(INLINE_BYTES, n.size)));
  } else if (extentCount <= INLINE_EXTENTS && n.extentChain === 0) {
    const items: Extent[] = [];
    for (let i = 0; i < extentCount; i++) items.push(readExtent(rec, INLINE_OFFSET + i * 16));
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
  rec.writeUInt32LE(n.mode, 0);
  rec.writeUInt32LE(n.uid, 4);
  rec.writeUInt32LE(n.gid, 8);
  rec.writeUInt32LE(n.nlink, 12);
  rec.writeBigUInt64LE(BigInt(n.size), 16);
  rec.writeBigUInt64LE(BigInt(n.blocks), 24);
  rec.writeDoubleLE(n.atimeMs, 32);
  rec.writeDoubleLE(n.mtimeMs, 40);
  rec.writeDoubleLE(n.ctimeMs, 48);
  rec.writeDoubleLE(n.crtimeMs, 56);
  rec.writeUInt32LE(n.generation >>> 0, 64);
  rec.writeUInt32LE(n.seq >>> 0, 68);
  rec.writeUInt32LE(n.flags, 72);
  rec.writeUInt32LE(n.extents.length, 76);
  rec.writeBigUInt64LE(BigInt(n.extentChain), 80);
  rec.writeBigUInt64LE(BigInt(n.xattrBlock), 88);
  rec.writeBigUInt64LE(BigInt(n.pptRoot), 96);
  rec.writeUInt32LE(n.pptLevel, 104);
  rec.writeUInt32LE(n.pptNodes, 108);
  if (n.flags & INODE_FLAG_INLINE_SYMLINK) {
    n.inline.copy(rec, INLINE_OFFSET, 0, INLINE_BYTES);
  } else if (n.extentChain === 0) {
    n.extents.items.forEach((e, i) => writeExtent(rec, INLINE_OFFSET + i * 16, e));
  }
  rec.writeUInt32LE(n.parent, 240);
  rec.writeUInt32LE(n.rdev >>> 0, 244);
  rec.writeUInt32LE(crc32c(rec.subarray(0, CRC_AT)), CRC_AT);
}

export function readExtent(b: Buffer, off: number): Extent {
  return { logical: b.readUInt32LE(off), count: b.readUInt32LE(off + 4), physical: Number(b.readBigUInt64LE(off + 8)) };
}

export function writeExtent(b: Buffer, off: number, e: Extent): void {
  b.writeUInt32LE(e.logical, off);
  b.writeUInt32LE(e.count, off + 4);
  b.writeBigUInt64LE(BigInt(e.physical), off + 8);
}
