/**
 * Persistent page-table nodes, x86-64 style: a node is one 4 KiB pool block
 * of 512 little-endian 64-bit entries.
 *
 *   bit 0      present
 *   bit 1      writable
 *   bit 7      huge: the entry maps its whole range (2 MiB in a PMD node,
 *              1 GiB in a PUD node) instead of pointing to a node below
 *   bits 12-51 pool block number << 12, i.e. the pool byte offset of the
 *              mapped block or of the node below (a physical address)
 *
 * Levels: 1 = PTE (an entry maps 4 KiB), 2 = PMD (2 MiB), 3 = PUD (1 GiB),
 * 4 = P4D (512 GiB). A file's root is at the level its size needs.
 */

export const ENTRIES_PER_NODE = 512;
export const ENTRY_PRESENT = 0x1;
export const ENTRY_WRITABLE = 0x2;
export const ENTRY_HUGE = 0x80;

/** 4 KiB blocks one entry covers at each level (index = level). */
export const BLOCKS_PER_ENTRY = [0, 1, 512, 512 * 512, 512 * 512 * 512] as const;
export const MAX_LEVEL = 4;

export interface Entry {
  present: boolean;
  huge: boolean;
  block: number;
}

const TWO32 = 2 ** 32;

export function readEntry(node: Buffer, index: number): Entry {
  const lo = node.readUInt32LE(index * 8);
  const hi = node.readUInt32LE(index * 8 + 4);
  return {
    present: (lo & ENTRY_PRESENT) !== 0,
    huge: (lo & ENTRY_HUGE) !== 0,
    block: hi * 2 ** 20 + (lo >>> 12),
  };
}

export function writeEntry(node: Buffer, index: number, block: number, huge: boolean): void {
  const address = block * 4096;
  const lo = (address % TWO32) | ENTRY_PRESENT | ENTRY_WRITABLE | (huge ? ENTRY_HUGE : 0);
  node.writeUInt32LE(lo >>> 0, index * 8);
  node.writeUInt32LE(Math.floor(address / TWO32), index * 8 + 4);
}

export function clearEntry(node: Buffer, index: number): void {
  node.writeUInt32LE(0, index * 8);
  node.writeUInt32LE(0, index * 8 + 4);
}

/** Root level for a file of `size` bytes (0 = no table). */
export function levelForSize(size: number): number {
  if (size <= 0) return 0;
  const blocks = Math.ceil(size / 4096);
  for (let level = 1; level <= MAX_LEVEL; level++) {
    if (blocks <= BLOCKS_PER_ENTRY[level] * ENTRIES_PER_NODE) return level;
  }
  return MAX_LEVEL;
}
