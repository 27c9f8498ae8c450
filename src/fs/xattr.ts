/**
 * Extended attributes: all of a file's attributes in one block (as ext4
 * without ea_inode: names and values together must fit, else ENOSPC).
 *
 * Block: 0 magic 'DXXA' u32, 4 ino u32, 8 count u16, entries from byte 16:
 * nameLen u8, 0 u8, valueLen u16, name (raw bytes, see bytestr.ts), value.
 * CRC tail.
 */
import { FsError, S_IFDIR, S_IFREG } from './api.js';
import { fromBytes, requireByteString } from './bytestr.js';
import type { Inode } from './inode.js';
import type { InodeTable } from './inodes.js';
import { CRC_OFFSET } from './layout.js';
import type { MetaStore } from './metastore.js';

const MAGIC = 0x41585844; // 'DXXA'
const HEADER = 16;
export const XATTR_CAPACITY = CRC_OFFSET - HEADER;
const NAMESPACES = ['user.', 'trusted.', 'security.'];

/** Check a name: EOPNOTSUPP for namespaces we do not keep, ERANGE for long names. */
export function checkXattrName(inode: Inode, name: string): void {
  if (!NAMESPACES.some((ns) => name.startsWith(ns)) || name.length === name.indexOf('.') + 1) {
    throw new FsError('EOPNOTSUPP', `extended attribute namespace of ${JSON.stringify(name)} is not supported`);
  }
  requireByteString(name, 'an extended attribute name');
  if (name.length > 255) throw new FsError('ERANGE', 'extended attribute name longer than 255 bytes');
  // As ext4: user.* only on regular files and directories.
  if (name.startsWith('user.') && inode.type !== S_IFREG && inode.type !== S_IFDIR) {
    throw new FsError('EPERM', 'user.* attributes are only for regular files and directories');
  }
}

export function loadXattrs(store: MetaStore, inode: Inode): Map<string, Buffer> {
  if (inode.xattrs) return inode.xattrs;
  const map = new Map<string, Buffer>();
  if (inode.xattrBlock !== 0) {
    const image = store.load(inode.xattrBlock, 'crc', 'xattr block');
    if (image.readUInt32LE(0) !== MAGIC || image.readUInt32LE(4) !== inode.ino) {
      throw new FsError('EIO', `xattr block ${inode.xattrBlock} does not belong to inode ${inode.ino}; run daxvm fsck`);
    }
    let off = HEADER;
    const count = image.readUInt16LE(8);
    for (let i = 0; i < count; i++) {
      const nameLen = image.readUInt8(off);
      const valueLen = image.readUInt16LE(off + 2);
      if (off + 4 + nameLen + valueLen > CRC_OFFSET) throw new FsError('EIO', `malformed xattr block of inode ${inode.ino}; run daxvm fsck`);
      const name = fromBytes(image, off + 4, off + 4 + nameLen);
      if (!NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length) || map.has(name)) {
        throw new FsError('EIO', `malformed xattr block of inode ${inode.ino} (attribute name ${JSON.stringify(name)}); run daxvm fsck`);
      }
      map.set(name, Buffer.from(image.subarray(off + 4 + nameLen, off + 4 + nameLen + valueLen)));
      off += 4 + nameLen + valueLen;
    }
  }
  inode.xattrs = map;
  return map;
}

export function xattrBytes(map: Map<string, Buffer>): number {
  let n = 0;
  for (const [name, value] of map) n += 4 + name.length + value.length;
  return n;
}

/** Write the map back (allocating or freeing the block); the caller saves the inode. */
export function saveXattrs(store: MetaStore, table: InodeTable, inode: Inode, map: Map<string, Buffer>): void {
  if (map.size === 0) {
    if (inode.xattrBlock !== 0) {
      table.freeMeta(inode.xattrBlock);
      inode.xattrBlock = 0;
      inode.blocks--;
    }
    return;
  }
  let image: Buffer;
  if (inode.xattrBlock === 0) {
    inode.xattrBlock = table.allocMeta();
    inode.blocks++;
    image = store.fresh(inode.xattrBlock, 'crc');
  } else {
    image = store.load(inode.xattrBlock, 'crc', 'xattr block');
    image.fill(0, 0, CRC_OFFSET);
  }
  image.writeUInt32LE(MAGIC, 0);
  image.writeUInt32LE(inode.ino, 4);
  image.writeUInt16LE(map.size, 8);
  let off = HEADER;
  for (const [name, value] of map) {
    const nameLen = image.write(name, off + 4, 'latin1');
    image.writeUInt8(nameLen, off);
    image.writeUInt16LE(value.length, off + 2);
    value.copy(image, off + 4 + nameLen);
    off += 4 + nameLen + value.length;
  }
  store.markDirty(inode.xattrBlock, 'crc');
}
