/** CRC32C (Castagnoli) of metadata, hardware-accelerated through @node-rs/crc32. */
import { crc32 as nativeCrc32, crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C of `data`, continuing from `previous` when chaining several buffers. */
export function crc32c(data: Uint8Array, previous = 0): number {
  return nativeCrc32c(data, previous) >>> 0;
}

/**
 * CRC-32 (IEEE 802.3) of `data`, continuing from `previous`: for checksums
 * over data that holds CRC32C seals (see TransactionCrc in journal.ts).
 */
export function crc32ieee(data: Uint8Array, previous = 0): number {
  return nativeCrc32(data, previous) >>> 0;
}
