/**
 * The redo journal's two block kinds (each with a CRC tail): a descriptor
 * naming the home blocks of the images that follow it, and the commit block
 * that closes a transaction.
 */
import { constants, layout, u32, u64 } from './describe.js';
import { CRC_OFFSET } from './pool.js';

export const JOURNAL_DESCRIPTOR = layout('journal_descriptor', 24, 'the header of a journal descriptor block; target block numbers (u64) follow from byte 24', {
  magic: u32(0, "magic 'DXJD' (0x444a5844)"),
  seq: u64(8, 'sequence'),
  count: u32(16, 'images that follow'),
});

export const JOURNAL_COMMIT = layout('journal_commit', 24, 'a journal commit block', {
  magic: u32(0, "magic 'DXJC' (0x434a5844)"),
  seq: u64(8, 'sequence'),
  blocks: u32(16, 'blocks of the transaction before the commit'),
  chain_crc: u32(20, 'CRC-32 (IEEE 802.3) chained over every descriptor and image block of the transaction'),
});

export const { magic: JD_MAGIC, seq: JD_SEQ, count: JD_COUNT } = JOURNAL_DESCRIPTOR.off;
export const { magic: JC_MAGIC, seq: JC_SEQ, blocks: JC_BLOCKS, chain_crc: JC_CHAIN_CRC } = JOURNAL_COMMIT.off;

export const JOURNAL_CONSTANTS = constants('journal', 'journal block kinds', {
  JOURNAL_DESCRIPTOR_MAGIC: 0x444a5844,
  JOURNAL_COMMIT_MAGIC: 0x434a5844,
  JOURNAL_DESCRIPTOR_HEADER: JOURNAL_DESCRIPTOR.size,
  /** Targets one descriptor holds. */
  JOURNAL_TARGETS_PER_DESCRIPTOR: Math.floor((CRC_OFFSET - JOURNAL_DESCRIPTOR.size) / 8),
});

export const {
  JOURNAL_DESCRIPTOR_MAGIC, JOURNAL_COMMIT_MAGIC, JOURNAL_DESCRIPTOR_HEADER, JOURNAL_TARGETS_PER_DESCRIPTOR,
} = JOURNAL_CONSTANTS.values;
