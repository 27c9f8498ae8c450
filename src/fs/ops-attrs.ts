/** Attributes, extended attributes and statfs. */
import { FsError, S_IFMT, XATTR_CREATE, XATTR_REPLACE, type Attr, type StatFs } from './api.js';
import type { FsCore } from './core.js';
import { capByHost } from './host-space.js';
import type { Inode } from './inode.js';
import { BLOCK_SIZE, NAME_MAX } from '../core/format/pool.js';
import { checkXattrName, loadXattrs, saveXattrs, XATTR_CAPACITY, xattrBytes } from './xattr.js';

/** chown's "leave as is" (uint32 -1, as FUSE passes it). */
const KEEP_ID = 0xffffffff;

export function attrOf(inode: Inode): Attr {
  return {
    ino: inode.ino,
    mode: inode.mode,
    nlink: inode.nlink,
    uid: inode.uid,
    gid: inode.gid,
    rdev: inode.rdev,
    size: inode.size,
    blocks: inode.blocks * (BLOCK_SIZE / 512),
    blksize: BLOCK_SIZE,
    atimeMs: inode.atimeMs,
    mtimeMs: inode.mtimeMs,
    ctimeMs: inode.ctimeMs,
    generation: inode.generation,
  };
}

export function chmod(core: FsCore, ino: number, mode: number): Attr {
  core.requireWritable();
  const inode = core.inode(ino);
  inode.mode = (inode.mode & S_IFMT) | (mode & 0o7777);
  inode.ctimeMs = Date.now();
  core.save(inode);
  return attrOf(inode);
}

export function chown(core: FsCore, ino: number, uid: number, gid: number): Attr {
  core.requireWritable();
  const inode = core.inode(ino);
  if (uid >= 0 && uid !== KEEP_ID) inode.uid = uid;
  if (gid >= 0 && gid !== KEEP_ID) inode.gid = gid;
  inode.ctimeMs = Date.now();
  core.save(inode);
  return attrOf(inode);
}

export function utimens(core: FsCore, ino: number, atimeMs: number, mtimeMs: number): Attr {
  core.requireWritable();
  const inode = core.inode(ino);
  if (atimeMs >= 0) inode.atimeMs = atimeMs;
  if (mtimeMs >= 0) inode.mtimeMs = mtimeMs;
  inode.ctimeMs = Date.now();
  core.save(inode);
  return attrOf(inode);
}

export function getxattr(core: FsCore, ino: number, name: string): Buffer {
  const inode = core.inode(ino);
  const value = loadXattrs(core.store, inode).get(name);
  if (!value) throw new FsError('ENODATA', `no attribute ${name}`);
  return value;
}

export function listxattr(core: FsCore, ino: number): string[] {
  return [...loadXattrs(core.store, core.inode(ino)).keys()];
}

export function setxattr(core: FsCore, ino: number, name: string, value: Buffer, flags: number): void {
  core.requireWritable();
  const inode = core.inode(ino);
  checkXattrName(inode, name);
  const map = loadXattrs(core.store, inode);
  const exists = map.has(name);
  if (flags & XATTR_CREATE && exists) throw new FsError('EEXIST', `attribute ${name} exists`);
  if (flags & XATTR_REPLACE && !exists) throw new FsError('ENODATA', `no attribute ${name}`);
  const next = new Map(map);
  next.set(name, Buffer.from(value));
  if (xattrBytes(next) > XATTR_CAPACITY) throw new FsError('ENOSPC', 'no room for the extended attribute (4 KiB per file)');
  saveXattrs(core.store, core.inodes, inode, next);
  inode.xattrs = next;
  inode.ctimeMs = Date.now();
  core.save(inode);
}

export function removexattr(core: FsCore, ino: number, name: string): void {
  core.requireWritable();
  const inode = core.inode(ino);
  const map = loadXattrs(core.store, inode);
  if (!map.has(name)) throw new FsError('ENODATA', `no attribute ${name}`);
  const next = new Map(map);
  next.delete(name);
  saveXattrs(core.store, core.inodes, inode, next);
  inode.xattrs = next;
  inode.ctimeMs = Date.now();
  core.save(inode);
}

export function statfs(core: FsCore): StatFs {
  const free = core.alloc.freeSoon;
  return capByHost(core.pool, {
    bsize: BLOCK_SIZE,
    blocks: core.sb.geometry.totalBlocks,
    bfree: free,
    bavail: Math.max(0, free - core.alloc.reserve),
    files: core.sb.geometry.inodeCount - 1,
    ffree: core.inodes.free,
    namemax: NAME_MAX,
  });
}
