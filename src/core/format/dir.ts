/**
 * Directory blocks: ext2-style variable-length records tiling bytes
 * [0, CRC_OFFSET) of each block, a CRC tail closing it.
 */
import { constants, layout, u16, u32, u8 } from './describe.js';

export const DIR_RECORD = layout('dir_record', 8, 'the head of a directory record; the name (no NUL) follows', {
  ino: u32(0, 'inode number (0 = free space)'),
  rec_len: u16(4, 'record length (a multiple of 4)'),
  name_len: u8(6, 'name length (1..255 bytes)'),
  file_type: u8(7, 'file type (st_mode >> 12)'),
});

export const { ino: DIRENT_INO, rec_len: DIRENT_REC_LEN, name_len: DIRENT_NAME_LEN, file_type: DIRENT_TYPE } = DIR_RECORD.off;

export const DIR_CONSTANTS = constants('dir', 'directory records', {
  DIR_RECORD_HEADER: DIR_RECORD.size,
  DIR_RECORD_ALIGN: 4,
});

export const { DIR_RECORD_HEADER } = DIR_CONSTANTS.values;
