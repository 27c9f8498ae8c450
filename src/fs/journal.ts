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
 */
import type { Pool } from '../media/pool.js';
import { crc32ieee } from '../core/format/checksum.js';
import { BLOCK_SIZE, type Geometry } from '../core/format/pool.js';
import { crcMatches, sealCrc } from './metastore.js';
import { readU64, writeU64 } from '../core/format/u64.js';
import {
  JC_BLOCKS, JC_CHAIN_CRC, JC_MAGIC, JC_SEQ, JD_COUNT, JD_MAGIC, JD_SEQ, JOURNAL_COMMIT_MAGIC, JOURNAL_DESCRIPTOR_HEADER,
  JOURNAL_DESCRIPTOR_MAGIC, JOURNAL_TARGETS_PER_DESCRIPTOR,
} from '../core/format/journal.js';

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

  /** Write one transaction at `pos` (no barrier: the caller persists). */
  append(images: Array<[number, Buffer]>): void {
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
}

/** Read the committed transactions from the journal (writes nothing). */
export function readJournal(pool: Pool, geometry: Geometry, firstSeq: number): ReplayResult {
  const images = new Map<number, Buffer>();
  let seq = firstSeq;
  let pos = 0;
  let transactions = 0;
  const readAt = (p: number): Buffer => pool.read((geometry.journalStart + p) * BLOCK_SIZE, BLOCK_SIZE);
  for (;;) {
    const pending: Array<[number, Buffer]> = [];
    let p = pos;
    const crc = new TransactionCrc();
    let committed = false;
    while (p < geometry.journalBlocks) {
      const block = readAt(p);
      const magic = block.readUInt32LE(JD_MAGIC);
      if (!crcMatches(block) || readU64(block, JD_SEQ) !== seq) break;
      if (magic === COMMIT_MAGIC) {
        committed = block.readUInt32LE(JC_BLOCKS) === p - pos && block.readUInt32LE(JC_CHAIN_CRC) === crc.value();
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
    if (!committed) break;
    for (const [target, image] of pending) {
      // A target outside the metadata and data areas is never journaled: ignore it.
      if (target >= geometry.inodeBitmapStart && target < geometry.totalBlocks) images.set(target, image);
    }
    transactions++;
    seq++;
    pos = p;
  }
  return { images, transactions, nextSeq: seq };
}
