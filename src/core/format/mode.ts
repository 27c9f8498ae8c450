/** File type bits of a mode word (inode offset 0, `st_mode`), as in <sys/stat.h>. */
import { constants } from './describe.js';

export const MODE_BITS = constants('mode', 'file type bits of st_mode, as <sys/stat.h>', {
  S_IFMT: 0o170000,
  S_IFSOCK: 0o140000,
  S_IFLNK: 0o120000,
  S_IFREG: 0o100000,
  S_IFBLK: 0o060000,
  S_IFDIR: 0o040000,
  S_IFCHR: 0o020000,
  S_IFIFO: 0o010000,
});

export const { S_IFMT, S_IFSOCK, S_IFLNK, S_IFREG, S_IFBLK, S_IFDIR, S_IFCHR, S_IFIFO } = MODE_BITS.values;
