/**
 * Extended attributes: all of a file's attributes in one block (as ext4
 * without ea_inode: names and values together must fit, else ENOSPC).
 *
 * Layout: src/core/format/xattr.ts (names are raw bytes, see bytestr.ts).
 */
import { FsError, S_IFDIR, S_IFREG } from './api.js';
import { fromBytes, requireByteString } from './bytestr.js';
import type { Inode } from './inode.js';
import type { InodeTable } from './inodes.js';
import { CRC_OFFSET } from '../core/format/pool.js';
import {
  XATTR_COUNT, XATTR_ENTRY_HEADER, XATTR_HEADER, XATTR_INO, XATTR_MAGIC, XATTR_MAGIC_AT, XATTR_NAME_LEN, XATTR_SPACE, XATTR_VALUE_LEN,
} from '../core/format/xattr.js';
import type { MetaStore } from './metastore.js';

const MAGIC = XATTR_MAGIC;
const HEADER = XATTR_HEADER;
const ENTRY = XATTR_ENTRY_HEADER;
export const XATTR_CAPACITY = XATTR_SPACE;
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
    if (image.readUInt32LE(XATTR_MAGIC_AT) !== MAGIC || image.readUInt32LE(XATTR_INO) !== inode.ino) {
      throw new FsError('EIO', `xattr block ${inode.xattrBlock} does not belong to inode ${inode.ino}; run daxvm fsck`);
    }
    let off = HEADER;
    const count = image.readUInt16LE(XATTR_COUNT);
    for (let i = 0; i < count; i++) {
      const nameLen = image.readUInt8(off + XATTR_NAME_LEN);
      const valueLen = image.readUInt16LE(off + XATTR_VALUE_LEN);
      if (off + ENTRY + nameLen + valueLen > CRC_OFFSET) throw new FsError('EIO', `malformed xattr block of inode ${inode.ino}; run daxvm fsck`);
      const name = fromBytes(image, off + ENTRY, off + ENTRY + nameLen);
      if (!NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length) || map.has(name)) {
        throw new FsError('EIO', `malformed xattr block of inode ${inode.ino} (attribute name ${JSON.stringify(name)}); run daxvm fsck`);
      }
      map.set(name, Buffer.from(image.subarray(off + ENTRY + nameLen, off + ENTRY + nameLen + valueLen)));
      off += ENTRY + nameLen + valueLen;
    }
  }
  inode.xattrs = map;
  return map;
}

export function xattrBytes(map: Map<string, Buffer>): number {
  let n = 0;
  for (const [name, value] of map) n += ENTRY + name.length + value.length;
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
  image.writeUInt32LE(MAGIC, XATTR_MAGIC_AT);
  image.writeUInt32LE(inode.ino, XATTR_INO);
  image.writeUInt16LE(map.size, XATTR_COUNT);
  let off = HEADER;
  for (const [name, value] of map) {
    const nameLen = image.write(name, off + ENTRY, 'latin1');
    image.writeUInt8(nameLen, off + XATTR_NAME_LEN);
    image.writeUInt16LE(value.length, off + XATTR_VALUE_LEN);
    value.copy(image, off + ENTRY + nameLen);
    off += ENTRY + nameLen + value.length;
  }
  store.markDirty(inode.xattrBlock, 'crc');
}
