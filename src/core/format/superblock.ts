/**
 * The superblock (block 0; a backup in block 1), the knobs it persists, and
 * its codec. The checked part lies in the first 512-byte sector, which disks
 * write atomically.
 */
import { crc32c } from './checksum.js';
import { bytes, constants, f64, layout, u32, u64 } from './describe.js';
import {
  BLOCK_SIZE, computeGeometry, FORMAT_VERSION, INODE_SIZE, MAGIC, MIN_POOL_BYTES, PoolState, type Geometry,
} from './pool.js';

export const SUPERBLOCK = layout('superblock', 512, 'the superblock: block 0, a backup in block 1 (the rest of the block is zero)', {
  magic: bytes(0, 8, 'magic DAXVMPL1'),
  version: u32(8, 'format version'),
  compat: u32(12, 'compatible feature flags'),
  incompat: u32(16, 'incompatible feature flags'),
  ro_compat: u32(20, 'read-only-compatible feature flags'),
  block_size: u32(24, 'block size (4096)'),
  total_blocks: u64(32, 'total blocks'),
  inode_count: u32(40, 'inode count'),
  inode_size: u32(44, 'inode size (256)'),
  journal_start: u64(48, 'journal start'),
  journal_blocks: u64(56, 'journal blocks'),
  inode_bitmap_start: u64(64, 'inode bitmap start'),
  inode_bitmap_blocks: u32(72, 'inode bitmap blocks'),
  block_bitmap_start: u64(80, 'block bitmap start'),
  block_bitmap_blocks: u32(88, 'block bitmap blocks'),
  inode_table_start: u64(96, 'inode table start'),
  inode_table_blocks: u32(104, 'inode table blocks'),
  lease_table_start: u64(112, 'lease table start'),
  lease_table_blocks: u32(120, 'lease table blocks'),
  data_start: u64(128, 'data start'),
  root_ino: u32(136, 'root inode number'),
  state: u32(140, 'state: 0 clean, 1 mounted (or crashed), 2 errors found'),
  journal_seq: u64(144, 'journal sequence the first record must carry to be replayed'),
  mount_count: u32(152, 'mount count'),
  uuid: bytes(160, 16, 'UUID'),
  created: f64(176, 'created (ms)'),
  last_mount: f64(184, 'last mount (ms)'),
  last_commit: f64(192, 'last commit (ms)'),
  page_tables_on: u32(200, 'knob page_tables_on'),
  msync: u32(204, 'knob msync'),
  zeroout_blocks: u32(208, 'knob zeroout_blocks'),
  zombie_max_pages: u32(212, 'knob zombie_max_pages'),
  crc: u32(508, 'CRC32C of bytes [0, 508)'),
}, { algorithm: 'crc32c', from: 0, to: 508, at: 'crc' });

export const {
  magic: SB_MAGIC, version: SB_VERSION, compat: SB_COMPAT, incompat: SB_INCOMPAT, ro_compat: SB_RO_COMPAT,
  block_size: SB_BLOCK_SIZE, total_blocks: SB_TOTAL_BLOCKS, inode_count: SB_INODE_COUNT, inode_size: SB_INODE_SIZE,
  journal_start: SB_JOURNAL_START, journal_blocks: SB_JOURNAL_BLOCKS,
  inode_bitmap_start: SB_INODE_BITMAP_START, inode_bitmap_blocks: SB_INODE_BITMAP_BLOCKS,
  block_bitmap_start: SB_BLOCK_BITMAP_START, block_bitmap_blocks: SB_BLOCK_BITMAP_BLOCKS,
  inode_table_start: SB_INODE_TABLE_START, inode_table_blocks: SB_INODE_TABLE_BLOCKS,
  lease_table_start: SB_LEASE_TABLE_START, lease_table_blocks: SB_LEASE_TABLE_BLOCKS,
  data_start: SB_DATA_START, root_ino: SB_ROOT_INO, state: SB_STATE, journal_seq: SB_JOURNAL_SEQ,
  mount_count: SB_MOUNT_COUNT, uuid: SB_UUID, created: SB_CREATED, last_mount: SB_LAST_MOUNT,
  last_commit: SB_LAST_COMMIT, page_tables_on: SB_PAGE_TABLES_ON, msync: SB_MSYNC,
  zeroout_blocks: SB_ZEROOUT_BLOCKS, zombie_max_pages: SB_ZOMBIE_MAX_PAGES, crc: SUPERBLOCK_CRC_OFFSET,
} = SUPERBLOCK.off;

/**
 * Feature flags. VOUCHING_JOURNAL (incompatible): the journal may hold a
 * commit that vouches for its data (journal_vouch records) instead of
 * following a barrier that made the data durable; replay must check the
 * last transaction's vouches, which a daxvm that does not know them would
 * skip, trusting bytes that may never have reached the media. Set while the
 * pool is mounted writable, cleared at a clean unmount (the journal is then
 * empty), so a cleanly unmounted pool stays readable by an older daxvm and
 * a crashed one is refused by it as a newer format (as ext4's needs_recovery).
 */
export const SB_FEATURES = constants('sb_feature', 'superblock feature flags', {
  INCOMPAT_VOUCHING_JOURNAL: 0x1,
});
export const { INCOMPAT_VOUCHING_JOURNAL } = SB_FEATURES.values;
/** The incompatible flags this version knows. */
const KNOWN_INCOMPAT = INCOMPAT_VOUCHING_JOURNAL;

/** The incompatible feature flags set in `flags` by name (VOUCHING_JOURNAL), an unknown bit as 0x...: for `daxvm info`. */
export function incompatFeatureNames(flags: number): string[] {
  const out: string[] = [];
  for (let bit = 1; bit !== 0 && bit <= flags; bit = (bit << 1) >>> 0) {
    if (!(flags & bit)) continue;
    const name = Object.entries(SB_FEATURES.values).find(([k, v]) => v === bit && k.startsWith('INCOMPAT_'))?.[0];
    out.push(name ? name.slice('INCOMPAT_'.length) : `0x${bit.toString(16)}`);
  }
  return out;
}

/** Byte offset of the superblock's version field (tests patch it to fake a newer format). */
export const SUPERBLOCK_VERSION_OFFSET = SB_VERSION;

/** Knob values persisted in the superblock (the `.daxvm/` files of the mount). */
export interface Knobs {
  pageTablesOn: number;
  msync: number;
  zerooutBlocks: number;
  zombieMaxPages: number;
}

export type KnobName = keyof Knobs;

/** The knob files of `.daxvm/`, as they are spelled there (and in the superblock's field names). */
export const KNOB_FILES: Readonly<Record<string, KnobName>> = {
  page_tables_on: 'pageTablesOn',
  msync: 'msync',
  zeroout_blocks: 'zerooutBlocks',
  zombie_max_pages: 'zombieMaxPages',
};

export const DEFAULT_KNOBS: Readonly<Knobs> = { pageTablesOn: 0, msync: 1, zerooutBlocks: 1, zombieMaxPages: 33 };

/** The values each knob may take. */
export const KNOB_RANGES: Readonly<Record<KnobName, readonly [number, number]>> = {
  pageTablesOn: [0, 1],
  msync: [0, 1],
  zerooutBlocks: [0, 1],
  zombieMaxPages: [1, 1 << 20],
};

const KNOB_OFFSETS: Readonly<Record<KnobName, number>> = {
  pageTablesOn: SB_PAGE_TABLES_ON, msync: SB_MSYNC, zerooutBlocks: SB_ZEROOUT_BLOCKS, zombieMaxPages: SB_ZOMBIE_MAX_PAGES,
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

const putU64 = (b: Buffer, off: number, v: number): void => {
  b.writeBigUInt64LE(BigInt(v), off);
};
const getU64 = (b: Buffer, off: number): number => Number(b.readBigUInt64LE(off));

export function encodeSuperblock(sb: Superblock): Buffer {
  const b = Buffer.alloc(BLOCK_SIZE);
  const g = sb.geometry;
  b.write(MAGIC, SB_MAGIC, 'latin1');
  b.writeUInt32LE(sb.version, SB_VERSION);
  b.writeUInt32LE(sb.compatFeatures, SB_COMPAT);
  b.writeUInt32LE(sb.incompatFeatures, SB_INCOMPAT);
  b.writeUInt32LE(sb.roCompatFeatures, SB_RO_COMPAT);
  b.writeUInt32LE(BLOCK_SIZE, SB_BLOCK_SIZE);
  putU64(b, SB_TOTAL_BLOCKS, g.totalBlocks);
  b.writeUInt32LE(g.inodeCount, SB_INODE_COUNT);
  b.writeUInt32LE(INODE_SIZE, SB_INODE_SIZE);
  putU64(b, SB_JOURNAL_START, g.journalStart);
  putU64(b, SB_JOURNAL_BLOCKS, g.journalBlocks);
  putU64(b, SB_INODE_BITMAP_START, g.inodeBitmapStart);
  b.writeUInt32LE(g.inodeBitmapBlocks, SB_INODE_BITMAP_BLOCKS);
  putU64(b, SB_BLOCK_BITMAP_START, g.blockBitmapStart);
  b.writeUInt32LE(g.blockBitmapBlocks, SB_BLOCK_BITMAP_BLOCKS);
  putU64(b, SB_INODE_TABLE_START, g.inodeTableStart);
  b.writeUInt32LE(g.inodeTableBlocks, SB_INODE_TABLE_BLOCKS);
  putU64(b, SB_LEASE_TABLE_START, g.leaseTableStart);
  b.writeUInt32LE(g.leaseTableBlocks, SB_LEASE_TABLE_BLOCKS);
  putU64(b, SB_DATA_START, g.dataStart);
  b.writeUInt32LE(sb.rootIno, SB_ROOT_INO);
  b.writeUInt32LE(sb.state, SB_STATE);
  putU64(b, SB_JOURNAL_SEQ, sb.journalSeq);
  b.writeUInt32LE(sb.mountCount, SB_MOUNT_COUNT);
  sb.uuid.copy(b, SB_UUID, 0, 16);
  b.writeDoubleLE(sb.createdMs, SB_CREATED);
  b.writeDoubleLE(sb.lastMountMs, SB_LAST_MOUNT);
  b.writeDoubleLE(sb.lastWriteMs, SB_LAST_COMMIT);
  for (const [knob, at] of Object.entries(KNOB_OFFSETS) as Array<[KnobName, number]>) b.writeUInt32LE(sb.knobs[knob], at);
  b.writeUInt32LE(crc32c(b.subarray(0, SUPERBLOCK_CRC_OFFSET)), SUPERBLOCK_CRC_OFFSET);
  return b;
}

export type SuperblockProblem = 'not-ours' | 'newer-format' | 'bad-checksum' | 'bad-geometry';

export type DecodedSuperblock =
  | { ok: true; sb: Superblock }
  | { ok: false; problem: SuperblockProblem; detail: string };

export function decodeSuperblock(b: Buffer): DecodedSuperblock {
  if (b.length < BLOCK_SIZE || b.toString('latin1', SB_MAGIC, SB_MAGIC + MAGIC.length) !== MAGIC) {
    return { ok: false, problem: 'not-ours', detail: 'no daxvm magic in the superblock' };
  }
  const version = b.readUInt32LE(SB_VERSION);
  if (b.readUInt32LE(SUPERBLOCK_CRC_OFFSET) !== crc32c(b.subarray(0, SUPERBLOCK_CRC_OFFSET))) {
    return { ok: false, problem: 'bad-checksum', detail: 'superblock checksum mismatch' };
  }
  if (version > FORMAT_VERSION) {
    return { ok: false, problem: 'newer-format', detail: `format version ${version}; this daxvm reads up to version ${FORMAT_VERSION}` };
  }
  if (b.readUInt32LE(SB_BLOCK_SIZE) !== BLOCK_SIZE || b.readUInt32LE(SB_INODE_SIZE) !== INODE_SIZE) {
    return { ok: false, problem: 'bad-geometry', detail: 'unsupported block or inode size' };
  }
  const geometry: Geometry = {
    totalBlocks: getU64(b, SB_TOTAL_BLOCKS),
    inodeCount: b.readUInt32LE(SB_INODE_COUNT),
    journalStart: getU64(b, SB_JOURNAL_START),
    journalBlocks: getU64(b, SB_JOURNAL_BLOCKS),
    inodeBitmapStart: getU64(b, SB_INODE_BITMAP_START),
    inodeBitmapBlocks: b.readUInt32LE(SB_INODE_BITMAP_BLOCKS),
    blockBitmapStart: getU64(b, SB_BLOCK_BITMAP_START),
    blockBitmapBlocks: b.readUInt32LE(SB_BLOCK_BITMAP_BLOCKS),
    inodeTableStart: getU64(b, SB_INODE_TABLE_START),
    inodeTableBlocks: b.readUInt32LE(SB_INODE_TABLE_BLOCKS),
    leaseTableStart: getU64(b, SB_LEASE_TABLE_START),
    leaseTableBlocks: b.readUInt32LE(SB_LEASE_TABLE_BLOCKS),
    dataStart: getU64(b, SB_DATA_START),
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
  const state = b.readUInt32LE(SB_STATE);
  const rootIno = b.readUInt32LE(SB_ROOT_INO);
  if (state > PoolState.Errors || rootIno < 1 || rootIno >= geometry.inodeCount) {
    return { ok: false, problem: 'bad-geometry', detail: `bad state ${state} or root inode ${rootIno}` };
  }
  // Below 2^52: a sequence that many commits can still follow stays exact as a JavaScript number.
  if (getU64(b, SB_JOURNAL_SEQ) >= 2 ** 52) {
    return { ok: false, problem: 'bad-geometry', detail: `journal sequence ${b.readBigUInt64LE(SB_JOURNAL_SEQ)} out of range` };
  }
  const incompat = b.readUInt32LE(SB_INCOMPAT);
  const roCompat = b.readUInt32LE(SB_RO_COMPAT);
  if ((incompat & ~KNOWN_INCOMPAT) !== 0 || roCompat !== 0) {
    // Features this version does not know change how the pool must be read (or written): as a newer format.
    return { ok: false, problem: 'newer-format', detail: `feature flags this daxvm does not know (incompatible 0x${incompat.toString(16)}, read-only compatible 0x${roCompat.toString(16)})` };
  }
  const knobs = {} as Knobs;
  for (const [key, [lo, hi]] of Object.entries(KNOB_RANGES) as Array<[KnobName, readonly [number, number]]>) {
    const v = b.readUInt32LE(KNOB_OFFSETS[key]);
    if (v < lo || v > hi) return { ok: false, problem: 'bad-geometry', detail: `knob ${key} is ${v}, outside ${lo}..${hi}` };
    knobs[key] = v;
  }
  return {
    ok: true,
    sb: {
      version,
      compatFeatures: b.readUInt32LE(SB_COMPAT),
      incompatFeatures: incompat,
      roCompatFeatures: roCompat,
      geometry,
      rootIno,
      state,
      journalSeq: getU64(b, SB_JOURNAL_SEQ),
      mountCount: b.readUInt32LE(SB_MOUNT_COUNT),
      uuid: Buffer.from(b.subarray(SB_UUID, SB_UUID + 16)),
      createdMs: b.readDoubleLE(SB_CREATED),
      lastMountMs: b.readDoubleLE(SB_LAST_MOUNT),
      lastWriteMs: b.readDoubleLE(SB_LAST_COMMIT),
      knobs,
    },
  };
}
