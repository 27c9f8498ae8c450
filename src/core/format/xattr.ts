/** The xattr block: all of a file's extended attributes in one block, CRC tail. */
import { constants, layout, u16, u32, u8 } from './describe.js';
import { CRC_OFFSET } from './pool.js';

export const XATTR_BLOCK = layout('xattr_block', 16, 'the header of an xattr block; entries follow from byte 16', {
  magic: u32(0, "magic 'DXXA' (0x41585844)"),
  ino: u32(4, 'inode number'),
  count: u16(8, 'entry count'),
});

export const XATTR_ENTRY = layout('xattr_entry', 4, 'the head of an xattr entry; the full name, then the value, follow', {
  name_len: u8(0, 'name length'),
  zero: u8(1, 'zero'),
  value_len: u16(2, 'value length'),
});

export const { magic: XATTR_MAGIC_AT, ino: XATTR_INO, count: XATTR_COUNT } = XATTR_BLOCK.off;
export const { name_len: XATTR_NAME_LEN, value_len: XATTR_VALUE_LEN } = XATTR_ENTRY.off;

export const XATTR_CONSTANTS = constants('xattr', 'xattr blocks', {
  XATTR_MAGIC: 0x41585844,
  XATTR_HEADER: XATTR_BLOCK.size,
  XATTR_ENTRY_HEADER: XATTR_ENTRY.size,
  /** Names and values together fit here (4076 bytes); more is ENOSPC. */
  XATTR_SPACE: CRC_OFFSET - XATTR_BLOCK.size,
});

export const { XATTR_MAGIC, XATTR_HEADER, XATTR_ENTRY_HEADER, XATTR_SPACE } = XATTR_CONSTANTS.values;
