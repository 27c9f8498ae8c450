/**
 * The redo journal: whole-block images, a linear log reset at each checkpoint.
 *
 * A transaction is one or more descriptor blocks, each followed by the images
 * it lists, then a commit block whose CRC covers every block of the
 * transaction. All of it is written with one persist barrier (the commit's
 * CRC detects a torn transaction, as jbd2's async_commit does); home
 * locations are written only after that barrier. Replay starts at the
 * journal's first block with the superblock's journalSeq and applies
 * transactions while their sequence numbers follow on and their CRCs match.
 *
 * A commit may vouch for file data (vouch.ts): byte ranges of the pool with
 * their CRC32C, stored in the same epoch as the commit, with no barrier
 * between them. Every commit ends with a barrier, so a transaction that a
 * valid later one follows is proven (the later one was written after the
 * earlier barrier returned); only the last valid transaction's vouches are
 * checked, and when the pool does not hold those bytes it is not applied
 * (its barrier never returned: the fsync that asked for it did not either).
 */
import type { Pool } from '../media/pool.js';
import { crc32c, crc32ieee } from '../core/format/checksum.js';
import { BLOCK_SIZE, type Geometry } from '../core/format/pool.js';
import { crcMatches, sealCrc } from './metastore.js';
import { readU64, writeU64 } from '../core/format/u64.js';
import {
  JC_BLOCKS, JC_CHAIN_CRC, JC_MAGIC, JC_SEQ, JC_VOUCHES, JD_COUNT, JD_MAGIC, JD_SEQ, JOURNAL_COMMIT, JOURNAL_COMMIT_MAGIC,
  JOURNAL_DESCRIPTOR_HEADER, JOURNAL_DESCRIPTOR_MAGIC, JOURNAL_TARGETS_PER_DESCRIPTOR, JOURNAL_VOUCH, JOURNAL_VOUCHES_MAX,
  JV_CRC, JV_LENGTH, JV_OFFSET,
} from '../core/format/journal.js';

/** A pool byte range a commit vouches for, with the CRC32C of its bytes. */
export interface Vouch {
  offset: number;
  length: number;
  crc: number;
}

const DESCRIPTOR_MAGIC = JOURNAL_DESCRIPTOR_MAGIC;
const COMMIT_MAGIC = JOURNAL_COMMIT_MAGIC;
const HEADER_BYTES = JOURNAL_DESCRIPTOR_HEADER;
/** Targets one descriptor block lists. */
export const TARGETS_PER_DESCRIPTOR = JOURNAL_TARGETS_PER_DESCRIPTOR;

/** Journal blocks a transaction of `images` blocks takes. */
export function transactionBlocks(images: number): number {
  return Math.ceil(images / TARGETS_PER_DESCRIPTOR) + images + 1;
}

/**
 * The commit block's checksum: CRC-32 (IEEE 802.3, not Castagnoli) chained
 * over every descriptor and image block of the transaction, in order. Not
 * CRC32C: most images end in, or are made of records that end in, their own
 * CRC32C (bitmaps, directories, each 256-byte inode), and a CRC32C chained
 * over data that is followed by its own CRC32C comes out the same whatever
 * that data holds, so a stale image left at that journal position by an
 * older transaction would pass for the new one.
 */
export class TransactionCrc {
  private crc = 0;

  add(block: Buffer): void {
    this.crc = crc32ieee(block, this.crc);
  }

  value(): number {
    return this.crc;
  }
}

export class Journal {
  /** Next free block index inside the journal. */
  pos = 0;

  constructor(
    private readonly pool: Pool,
    private readonly geometry: Geometry,
    /** Sequence number of the next transaction. */
    public nextSeq: number,
  ) {}

  get capacity(): number {
    return this.geometry.journalBlocks;
  }

  fits(images: number): boolean {
    return this.pos + transactionBlocks(images) <= this.capacity;
  }

  /** Write one transaction at `pos` (no barrier: the caller persists), vouching for `vouches`. */
  append(images: Array<[number, Buffer]>, vouches: readonly Vouch[] = []): void {
    if (vouches.length > JOURNAL_VOUCHES_MAX) throw new RangeError(`${vouches.length} vouches: at most ${JOURNAL_VOUCHES_MAX}`);
    const seq = this.nextSeq;
    const crc = new TransactionCrc();
    // The transaction's blocks are adjacent in the journal: one pwritev for all of them.
    const parts: Buffer[] = [];
    const put = (block: Buffer): void => {
      parts.push(block);
      crc.add(block);
    };
    for (let i = 0; i < images.length; i += TARGETS_PER_DESCRIPTOR) {
      const batch = images.slice(i, i + TARGETS_PER_DESCRIPTOR);
      const d = Buffer.alloc(BLOCK_SIZE);
      d.writeUInt32LE(DESCRIPTOR_MAGIC, JD_MAGIC);
      writeU64(d, JD_SEQ, seq);
      d.writeUInt32LE(batch.length, JD_COUNT);
      batch.forEach(([block], j) => writeU64(d, HEADER_BYTES + j * 8, block));
      sealCrc(d);
      put(d);
      for (const [, image] of batch) put(image);
    }
    const c = Buffer.alloc(BLOCK_SIZE);
    c.writeUInt32LE(COMMIT_MAGIC, JC_MAGIC);
    writeU64(c, JC_SEQ, seq);
    c.writeUInt32LE(transactionBlocks(images.length) - 1, JC_BLOCKS);
    c.writeUInt32LE(crc.value(), JC_CHAIN_CRC);
    c.writeUInt32LE(vouches.length, JC_VOUCHES);
    vouches.forEach((v, i) => {
      const at = JOURNAL_COMMIT.size + i * JOURNAL_VOUCH.size;
      writeU64(c, at + JV_OFFSET, v.offset);
      c.writeUInt32LE(v.length, at + JV_LENGTH);
      c.writeUInt32LE(v.crc, at + JV_CRC);
    });
    sealCrc(c);
    parts.push(c);
    this.pool.writev((this.geometry.journalStart + this.pos) * BLOCK_SIZE, parts);
    this.pos += transactionBlocks(images.length);
    this.nextSeq = seq + 1;
  }
}

export interface ReplayResult {
  /** Latest image of every block the committed transactions wrote. */
  images: Map<number, Buffer>;
  transactions: number;
  /** Sequence number after the last replayed transaction. */
  nextSeq: number;
  /**
   * The last transaction, whole and committed, was not applied: the pool
   * does not hold the data it vouches for (a crash inside its barrier).
   */
  discarded?: { seq: number; why: string };
}

/** The vouches of a commit block (null: the count is out of range). */
function readVouches(c: Buffer): Vouch[] | null {
  const n = c.readUInt32LE(JC_VOUCHES);
  if (n > JOURNAL_VOUCHES_MAX) return null;
  const out: Vouch[] = [];
  for (let i = 0; i < n; i++) {
    const at = JOURNAL_COMMIT.size + i * JOURNAL_VOUCH.size;
    out.push({ offset: readU64(c, at + JV_OFFSET), length: c.readUInt32LE(at + JV_LENGTH), crc: c.readUInt32LE(at + JV_CRC) });
  }
  return out;
}

/** Why the pool does not hold what `vouches` vouch for (null: it does). Only file data in the data area is vouched for. */
export function vouchMismatch(pool: Pool, geometry: Geometry, vouches: readonly Vouch[]): string | null {
  for (const v of vouches) {
    const end = v.offset + v.length;
    if (v.offset < geometry.dataStart * BLOCK_SIZE || end > geometry.totalBlocks * BLOCK_SIZE || v.length === 0) {
      return `a vouch for ${v.offset}+${v.length} outside the data area`;
    }
    if (crc32c(pool.read(v.offset, v.length)) !== v.crc) return `the pool does not hold the ${v.length} bytes it vouches for at ${v.offset}`;
  }
  return null;
}

/** Read the committed transactions from the journal (writes nothing). */
export function readJournal(pool: Pool, geometry: Geometry, firstSeq: number): ReplayResult {
  const images = new Map<number, Buffer>();
  /** The sequence the next transaction read must carry (one past the held one). */
  let seq = firstSeq;
  let pos = 0;
  let transactions = 0;
  const readAt = (p: number): Buffer => pool.read((geometry.journalStart + p) * BLOCK_SIZE, BLOCK_SIZE);
  // A transaction is applied once the next one proves it, or its vouches check out at the end.
  let held: { pending: Array<[number, Buffer]>; vouches: Vouch[] } | null = null;
  const apply = (pending: Array<[number, Buffer]>): void => {
    for (const [target, image] of pending) {
      // A target outside the metadata and data areas is never journaled: ignore it.
      if (target >= geometry.inodeBitmapStart && target < geometry.totalBlocks) images.set(target, image);
    }
    transactions++;
  };
  let discarded: ReplayResult['discarded'];
  for (;;) {
    const pending: Array<[number, Buffer]> = [];
    let p = pos;
    const crc = new TransactionCrc();
    let committed = false;
    let vouches: Vouch[] | null = [];
    while (p < geometry.journalBlocks) {
      const block = readAt(p);
      const magic = block.readUInt32LE(JD_MAGIC);
      if (!crcMatches(block) || readU64(block, JD_SEQ) !== seq) break;
      if (magic === COMMIT_MAGIC) {
        vouches = readVouches(block);
        committed = vouches !== null && block.readUInt32LE(JC_BLOCKS) === p - pos && block.readUInt32LE(JC_CHAIN_CRC) === crc.value();
        p++;
        break;
      }
      if (magic !== DESCRIPTOR_MAGIC) break;
      const count = block.readUInt32LE(JD_COUNT);
      if (count > TARGETS_PER_DESCRIPTOR || p + 1 + count > geometry.journalBlocks) break;
      crc.add(block);
      p++;
      for (let j = 0; j < count; j++, p++) {
        const target = readU64(block, HEADER_BYTES + j * 8);
        const image = readAt(p);
        crc.add(image);
        pending.push([target, image]);
      }
    }
    if (!committed || vouches === null) break;
    if (held) apply(held.pending);
    held = { pending, vouches };
    seq++;
    pos = p;
  }
  if (held) {
    const why = vouchMismatch(pool, geometry, held.vouches);
    if (why === null) apply(held.pending);
    else discarded = { seq: seq - 1, why };
  }
  // Past a discarded transaction: new ones start at block 0 with a sequence it does not carry.
  return { images, transactions, nextSeq: firstSeq + transactions + (discarded ? 1 : 0), ...(discarded ? { discarded } : {}) };
}
