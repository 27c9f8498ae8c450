/**
 * The format's two checksums, hardware-accelerated through @node-rs/crc32.
 * Which one seals what (docs/format.md):
 * - CRC32C (Castagnoli): the superblock (bytes [0, 508) at 508), every inode
 *   record ([0, 252) at 252), and every metadata block with a CRC tail
 *   (bitmaps, directories, extent chains, xattrs, journal descriptor and
 *   commit blocks: [0, 4092) at 4092).
 * - CRC-32 (IEEE 802.3): the journal commit block's checksum chained over
 *   the transaction's blocks, because those blocks end in their own CRC32C
 *   seals (see TransactionCrc in fs/journal.ts).
 */
import { crc32 as nativeCrc32, crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C of `data`, continuing from `previous` when chaining several buffers. */
export function crc32c(data: Uint8Array, previous = 0): number {
  return nativeCrc32c(data, previous) >>> 0;
}

/** CRC-32 (IEEE 802.3) of `data`, continuing from `previous`. */
export function crc32ieee(data: Uint8Array, previous = 0): number {
  return nativeCrc32(data, previous) >>> 0;
}
