/** CRC32C (Castagnoli) of metadata, hardware-accelerated through @node-rs/crc32. */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C of `data`, continuing from `previous` when chaining several buffers. */
export function crc32c(data: Uint8Array, previous = 0): number {
  return nativeCrc32c(data, previous) >>> 0;
}
