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

export const JOURNAL_COMMIT = layout('journal_commit', 32, 'a journal commit block; `vouches` journal_vouch records follow from byte 32', {
  magic: u32(0, "magic 'DXJC' (0x434a5844)"),
  seq: u64(8, 'sequence'),
  blocks: u32(16, 'blocks of the transaction before the commit'),
  chain_crc: u32(20, 'CRC-32 (IEEE 802.3) chained over every descriptor and image block of the transaction'),
  vouches: u32(24, 'vouched data ranges that follow (0: an ordered commit, its data made durable by a barrier before it)'),
});

/**
 * A range of file data a commit made reachable without a barrier before it:
 * replay applies the last transaction only when the pool holds these bytes.
 */
export const JOURNAL_VOUCH = layout('journal_vouch', 16, 'a data range a commit vouches for', {
  offset: u64(0, 'pool byte offset'),
  length: u32(8, 'bytes'),
  crc: u32(12, 'CRC32C of the pool bytes [offset, offset+length)'),
});

export const { magic: JD_MAGIC, seq: JD_SEQ, count: JD_COUNT } = JOURNAL_DESCRIPTOR.off;
export const { magic: JC_MAGIC, seq: JC_SEQ, blocks: JC_BLOCKS, chain_crc: JC_CHAIN_CRC, vouches: JC_VOUCHES } = JOURNAL_COMMIT.off;
export const { offset: JV_OFFSET, length: JV_LENGTH, crc: JV_CRC } = JOURNAL_VOUCH.off;

export const JOURNAL_CONSTANTS = constants('journal', 'journal block kinds', {
  JOURNAL_DESCRIPTOR_MAGIC: 0x444a5844,
  JOURNAL_COMMIT_MAGIC: 0x434a5844,
  JOURNAL_DESCRIPTOR_HEADER: JOURNAL_DESCRIPTOR.size,
  /** Targets one descriptor holds. */
  JOURNAL_TARGETS_PER_DESCRIPTOR: Math.floor((CRC_OFFSET - JOURNAL_DESCRIPTOR.size) / 8),
  /** Vouched ranges one commit holds at most (more: an ordered commit). */
  JOURNAL_VOUCHES_MAX: 64,
  /** Bytes one commit vouches for at most (more: an ordered commit, whose barrier a big write amortises). */
  JOURNAL_VOUCH_BYTES_MAX: 1024 * 1024,
});

export const {
  JOURNAL_DESCRIPTOR_MAGIC, JOURNAL_COMMIT_MAGIC, JOURNAL_DESCRIPTOR_HEADER, JOURNAL_TARGETS_PER_DESCRIPTOR,
  JOURNAL_VOUCHES_MAX, JOURNAL_VOUCH_BYTES_MAX,
} = JOURNAL_CONSTANTS.values;
