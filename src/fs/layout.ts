/**
 * On-media layout of a pool, format version 1. docs/format.md describes the
 * same thing for people; the two change together.
 *
 *   block 0          primary superblock
 *   block 1          backup superblock (geometry; rewritten at mkfs, clean unmount, fsck)
 *   journal          redo journal, a linear log reset at every checkpoint
 *   inode bitmap     1 bit per inode, 32736 bits a block, CRC tail
 *   block bitmap     1 bit per pool block, 32736 bits a block, CRC tail
 *   inode table      256-byte inodes, 16 a block, each with its own CRC
 *   lease table      reserved, zeroed (a later library resolves paths with it)
 *   data             file data and per-file metadata blocks (directories,
 *                    extent chains, xattrs, long symlinks, page tables)
 */
import { crc32c } from './checksum.js';

export const BLOCK_SIZE = 4096;
export const BLOCK_SHIFT = 12;
export const FORMAT_VERSION = 1;
export const MAGIC = 'DAXVMPL1';
export const SUPERBLOCK_BLOCK = 0;
export const BACKUP_SUPERBLOCK_BLOCK = 1;

/**
 * The superblock's CRC32C covers bytes [0, 508) and sits at 508, so the whole
 * checked part lies in one 512-byte sector (written atomically by disks).
 */
export const SUPERBLOCK_CRC_OFFSET = 508;
/** Metadata blocks with a CRC tail keep their CRC32C here, over bytes [0, CRC_OFFSET). */
export const CRC_OFFSET = BLOCK_SIZE - 4;
export const BITS_PER_BITMAP_BLOCK = CRC_OFFSET * 8;

export const INODE_SIZE = 256;
export const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE;

/** Blocks per 2 MiB huge region. */
export const HUGE_BLOCKS = 512;
export const LEASE_TABLE_BLOCKS = 64;

export const MIN_POOL_BYTES = 16 * 1024 * 1024;
/** Logical block numbers are 32-bit: 16 TiB less a block, as ext4 with 4 KiB blocks. */
export const MAX_FILE_SIZE = 2 ** 32 * BLOCK_SIZE - BLOCK_SIZE;
export const NAME_MAX = 255;

export enum PoolState {
  Clean = 0,
  Mounted = 1,
  Errors = 2,
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

/** Knob values persisted in the superblock (the `.daxvm/` files of the mount). */
export interface Knobs {
  pageTablesOn: number;
  msync: number;
  zerooutBlocks: number;
  zombieMaxPages: number;
}

export const DEFAULT_KNOBS: Knobs = { pageTablesOn: 0, msync: 1, zerooutBlocks: 1, zombieMaxPages: 33 };

/** The values each knob may take. */
export const KNOB_RANGES: Record<keyof Knobs, [number, number]> = {
  pageTablesOn: [0, 1],
  msync: [0, 1],
  zerooutBlocks: [0, 1],
  zombieMaxPages: [1, 1 << 20],
};

export interface Superblock {
  version: number;
  compatFeatures: number;
  incompatFeatures: number;
  roCompatFeatures: number;
  geometry: Geometry;
  rootIno: number;
  state: PoolState;
  /** Sequence number the first journal record must carry to be replayed. */
  journalSeq: number;
  mountCount: number;
  uuid: Buffer;
  createdMs: number;
  lastMountMs: number;
  lastWriteMs: number;
  knobs: Knobs;
}

const ceilDiv = (a: number, b: number): number => Math.floor((a + b - 1) / b);

/** Lay out a pool of `sizeBytes`: one inode per 16 KiB of pool unless told otherwise. */
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

// Superblock field offsets (little endian).
const SB = {
  magic: 0, version: 8, compat: 12, incompat: 16, roCompat: 20, blockSize: 24,
  totalBlocks: 32, inodeCount: 40, inodeSize: 44,
  journalStart: 48, journalBlocks: 56,
  inodeBitmapStart: 64, inodeBitmapBlocks: 72,
  blockBitmapStart: 80, blockBitmapBlocks: 88,
  inodeTableStart: 96, inodeTableBlocks: 104,
  leaseTableStart: 112, leaseTableBlocks: 120,
  dataStart: 128, rootIno: 136, state: 140, journalSeq: 144, mountCount: 152,
  uuid: 160, createdMs: 176, lastMountMs: 184, lastWriteMs: 192,
  pageTablesOn: 200, msync: 204, zerooutBlocks: 208, zombieMaxPages: 212,
} as const;

const putU64 = (b: Buffer, off: number, v: number): void => {
  b.writeBigUInt64LE(BigInt(v), off);
};
const getU64 = (b: Buffer, off: number): number => Number(b.readBigUInt64LE(off));

export function encodeSuperblock(sb: Superblock): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  const g = sb.geometry;
  b.write(MAGIC, SB.magic, 'latin1');
  b.writeUInt32LE(sb.version, SB.version);
  b.writeUInt32LE(sb.compatFeatures, SB.compat);
  b.writeUInt32LE(sb.incompatFeatures, SB.incompat);
  b.writeUInt32LE(sb.roCompatFeatures, SB.roCompat);
  b.writeUInt32LE(BLOCK_SIZE, SB.blockSize);
  putU64(b, SB.totalBlocks, g.totalBlocks);
  b.writeUInt32LE(g.inodeCount, SB.inodeCount);
  b.writeUInt32LE(INODE_SIZE, SB.inodeSize);
  putU64(b, SB.journalStart, g.journalStart);
  putU64(b, SB.journalBlocks, g.journalBlocks);
  putU64(b, SB.inodeBitmapStart, g.inodeBitmapStart);
  b.writeUInt32LE(g.inodeBitmapBlocks, SB.inodeBitmapBlocks);
  putU64(b, SB.blockBitmapStart, g.blockBitmapStart);
  b.writeUInt32LE(g.blockBitmapBlocks, SB.blockBitmapBlocks);
  putU64(b, SB.inodeTableStart, g.inodeTableStart);
  b.writeUInt32LE(g.inodeTableBlocks, SB.inodeTableBlocks);
  putU64(b, SB.leaseTableStart, g.leaseTableStart);
  b.writeUInt32LE(g.leaseTableBlocks, SB.leaseTableBlocks);
  putU64(b, SB.dataStart, g.dataStart);
  b.writeUInt32LE(sb.rootIno, SB.rootIno);
  b.writeUInt32LE(sb.state, SB.state);
  putU64(b, SB.journalSeq, sb.journalSeq);
  b.writeUInt32LE(sb.mountCount, SB.mountCount);
  sb.uuid.copy(b, SB.uuid, 0, 16);
  b.writeDoubleLE(sb.createdMs, SB.createdMs);
  b.writeDoubleLE(sb.lastMountMs, SB.lastMountMs);
  b.writeDoubleLE(sb.lastWriteMs, SB.lastWriteMs);
  b.writeUInt32LE(sb.knobs.pageTablesOn, SB.pageTablesOn);
  b.writeUInt32LE(sb.knobs.msync, SB.msync);
  b.writeUInt32LE(sb.knobs.zerooutBlocks, SB.zerooutBlocks);
  b.writeUInt32LE(sb.knobs.zombieMaxPages, SB.zombieMaxPages);
  b.writeUInt32LE(crc32c(b.subarray(0, SUPERBLOCK_CRC_OFFSET)), SUPERBLOCK_CRC_OFFSET);
  return b;
}

export type SuperblockProblem = 'not-ours' | 'newer-format' | 'bad-checksum' | 'bad-geometry';

export type DecodedSuperblock =
  | { ok: true; sb: Superblock }
  | { ok: false; problem: SuperblockProblem; detail: string };

export function decodeSuperblock(b: Buffer): DecodedSuperblock {
  if (b.length < BLOCK_SIZE || b.toString('latin1', SB.magic, SB.magic + 8) !== MAGIC) {
    return { ok: false, problem: 'not-ours', detail: 'no daxvm magic in the superblock' };
  }
  const version = b.readUInt32LE(SB.version);
  if (b.readUInt32LE(SUPERBLOCK_CRC_OFFSET) !== crc32c(b.subarray(0, SUPERBLOCK_CRC_OFFSET))) {
    return { ok: false, problem: 'bad-checksum', detail: 'superblock checksum mismatch' };
  }
  if (version > FORMAT_VERSION) {
    return { ok: false, problem: 'newer-format', detail: `format version ${version}; this daxvm reads up to version ${FORMAT_VERSION}` };
  }
  if (b.readUInt32LE(SB.blockSize) !== BLOCK_SIZE || b.readUInt32LE(SB.inodeSize) !== INODE_SIZE) {
    return { ok: false, problem: 'bad-geometry', detail: 'unsupported block or inode size' };
  }
  const geometry: Geometry = {
    totalBlocks: getU64(b, SB.totalBlocks),
    inodeCount: b.readUInt32LE(SB.inodeCount),
    journalStart: getU64(b, SB.journalStart),
    journalBlocks: getU64(b, SB.journalBlocks),
    inodeBitmapStart: getU64(b, SB.inodeBitmapStart),
    inodeBitmapBlocks: b.readUInt32LE(SB.inodeBitmapBlocks),
    blockBitmapStart: getU64(b, SB.blockBitmapStart),
    blockBitmapBlocks: b.readUInt32LE(SB.blockBitmapBlocks),
    inodeTableStart: getU64(b, SB.inodeTableStart),
    inodeTableBlocks: b.readUInt32LE(SB.inodeTableBlocks),
    leaseTableStart: getU64(b, SB.leaseTableStart),
    leaseTableBlocks: b.readUInt32LE(SB.leaseTableBlocks),
    dataStart: getU64(b, SB.dataStart),
  };
  if (geometry.totalBlocks * BLOCK_SIZE < MIN_POOL_BYTES) {
    return { ok: false, problem: 'bad-geometry', detail: `${geometry.totalBlocks} blocks: smaller than any pool mkfs makes` };
  }
  const expected = computeGeometry(geometry.totalBlocks * BLOCK_SIZE, geometry.inodeCount);
  for (const key of Object.keys(expected) as (keyof Geometry)[]) {
    if (expected[key] !== geometry[key]) {
      return { ok: false, problem: 'bad-geometry', detail: `geometry field ${key} is ${geometry[key]}, expected ${expected[key]}` };
    }
  }
  const state = b.readUInt32LE(SB.state);
  const rootIno = b.readUInt32LE(SB.rootIno);
  if (state > PoolState.Errors || rootIno < 1 || rootIno >= geometry.inodeCount) {
    return { ok: false, problem: 'bad-geometry', detail: `bad state ${state} or root inode ${rootIno}` };
  }
  // Below 2^52: a sequence that many commits can still follow stays exact as a JavaScript number.
  if (getU64(b, SB.journalSeq) >= 2 ** 52) {
    return { ok: false, problem: 'bad-geometry', detail: `journal sequence ${b.readBigUInt64LE(SB.journalSeq)} out of range` };
  }
  const incompat = b.readUInt32LE(SB.incompat);
  const roCompat = b.readUInt32LE(SB.roCompat);
  if (incompat !== 0 || roCompat !== 0) {
    // Features this version does not know change how the pool must be read (or written): as a newer format.
    return { ok: false, problem: 'newer-format', detail: `feature flags this daxvm does not know (incompatible 0x${incompat.toString(16)}, read-only compatible 0x${roCompat.toString(16)})` };
  }
  for (const [key, [lo, hi]] of Object.entries(KNOB_RANGES) as Array<[keyof Knobs, [number, number]]>) {
    const v = b.readUInt32LE(SB[key]);
    if (v < lo || v > hi) return { ok: false, problem: 'bad-geometry', detail: `knob ${key} is ${v}, outside ${lo}..${hi}` };
  }
  return {
    ok: true,
    sb: {
      version,
      compatFeatures: b.readUInt32LE(SB.compat),
      incompatFeatures: b.readUInt32LE(SB.incompat),
      roCompatFeatures: b.readUInt32LE(SB.roCompat),
      geometry,
      rootIno,
      state,
      journalSeq: getU64(b, SB.journalSeq),
      mountCount: b.readUInt32LE(SB.mountCount),
      uuid: Buffer.from(b.subarray(SB.uuid, SB.uuid + 16)),
      createdMs: b.readDoubleLE(SB.createdMs),
      lastMountMs: b.readDoubleLE(SB.lastMountMs),
      lastWriteMs: b.readDoubleLE(SB.lastWriteMs),
      knobs: {
        pageTablesOn: b.readUInt32LE(SB.pageTablesOn),
        msync: b.readUInt32LE(SB.msync),
        zerooutBlocks: b.readUInt32LE(SB.zerooutBlocks),
        zombieMaxPages: b.readUInt32LE(SB.zombieMaxPages),
      },
    },
  };
}

/** Byte offset of the superblock's version field (tests patch it to fake a newer format). */
export const SUPERBLOCK_VERSION_OFFSET = SB.version;
