/**
 * Persistent page tables as stored: a node is one 4 KiB pool block of 512
 * little-endian 64-bit entries, x86-64 style, and the `user.daxvm.ppt`
 * text by which the daemon tells the library where a file's table is.
 *
 *   bit 0      present
 *   bit 1      writable (always set: permission is per mapping)
 *   bit 7      huge: the entry maps its whole range (2 MiB in a PMD node,
 *              1 GiB in a PUD node) instead of pointing to a node below
 *   bits 12-51 pool block number << 12, i.e. the pool byte offset of the
 *              mapped block or of the node below
 *
 * Levels: 1 = PTE (an entry maps 4 KiB), 2 = PMD (2 MiB), 3 = PUD (1 GiB),
 * 4 = P4D (512 GiB). A file's root is at the level its size needs.
 */
import { constants } from './describe.js';
import { BLOCK_SHIFT, BLOCK_SIZE } from './pool.js';

/** The fields of the `user.daxvm.ppt` text, in order. */
const PPT_KEYS = ['ino', 'gen', 'seq', 'root', 'level', 'nodes', 'size'] as const;

export const PPT_CONSTANTS = constants('ppt', 'page-table nodes and entries', {
  PPT_ENTRIES_PER_NODE: 512,
  PPT_ENTRY_SIZE: 8,
  PPT_ENTRY_PRESENT: 0x1,
  PPT_ENTRY_WRITABLE: 0x2,
  PPT_ENTRY_HUGE: 0x80,
  /** The entry's address field: bits 12..51. */
  PPT_ADDRESS_SHIFT: BLOCK_SHIFT,
  PPT_ADDRESS_BITS: 40,
  PPT_LEVEL_PTE: 1,
  PPT_LEVEL_PMD: 2,
  PPT_LEVEL_PUD: 3,
  PPT_LEVEL_P4D: 4,
  PPT_MAX_LEVEL: 4,
  /** The computed xattr of regular files on the mount. */
  PPT_XATTR: 'user.daxvm.ppt',
  /** Its text, as scanf/printf read and write it (unsigned long long arguments). */
  PPT_TEXT_FORMAT: PPT_KEYS.map((k) => `${k}=%llu`).join(' '),
});

export const {
  PPT_ENTRIES_PER_NODE: ENTRIES_PER_NODE, PPT_ENTRY_PRESENT: ENTRY_PRESENT, PPT_ENTRY_WRITABLE: ENTRY_WRITABLE,
  PPT_ENTRY_HUGE: ENTRY_HUGE, PPT_MAX_LEVEL: MAX_LEVEL, PPT_XATTR,
} = PPT_CONSTANTS.values;

/** 4 KiB blocks one entry of a node at `level` (1..4) covers: 1, 512, 512², 512³. */
export function blocksPerEntry(level: number): number {
  if (!Number.isInteger(level) || level < 1 || level > MAX_LEVEL) throw new RangeError(`page-table level ${level}`);
  return ENTRIES_PER_NODE ** (level - 1);
}

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
    block: hi * 2 ** (32 - BLOCK_SHIFT) + (lo >>> BLOCK_SHIFT),
  };
}

export function writeEntry(node: Buffer, index: number, block: number, huge: boolean): void {
  const address = block * BLOCK_SIZE;
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
  const blocks = Math.ceil(size / BLOCK_SIZE);
  for (let level = 1; level <= MAX_LEVEL; level++) {
    if (blocks <= blocksPerEntry(level) * ENTRIES_PER_NODE) return level;
  }
  return MAX_LEVEL;
}

/** The `user.daxvm.ppt` text: where a regular file's table is, with the inode's identity and size. */
export type PptInfo = Record<(typeof PPT_KEYS)[number], number>;

const PPT_TEXT = new RegExp(`^${PPT_KEYS.map((k) => `${k}=(\\d+)`).join(' ')}$`);

/** `ino=.. gen=.. seq=.. root=.. level=.. nodes=.. size=..` (no newline). */
export function formatPpt(info: PptInfo): string {
  return PPT_KEYS.map((k) => `${k}=${info[k]}`).join(' ');
}

/** The text parsed (surrounding white space ignored); undefined when it is not one. */
export function parsePpt(text: string): PptInfo | undefined {
  const m = PPT_TEXT.exec(text.trim());
  if (!m) return undefined;
  const info = {} as PptInfo;
  PPT_KEYS.forEach((k, i) => {
    info[k] = Number(m[i + 1]);
  });
  return info;
}
