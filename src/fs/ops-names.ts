/**
 * Operations on names: lookup, create, mkdir, symlink, link, unlink, rmdir,
 * rename, readdir. Each checks everything that can fail, and allocates
 * everything it needs, before it changes anything.
 */
import {
  FsError, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
  type DirEntry, type Owner,
} from './api.js';
import type { FsCore } from './core.js';
import { Directory } from './dir.js';
import type { Inode } from './inode.js';
import { INLINE_BYTES, INODE_FLAG_INLINE_SYMLINK } from '../core/format/inode.js';
import { fromBytes, requireByteString, showName, toBytes } from './bytestr.js';
import { BLOCK_SIZE, NAME_MAX } from '../core/format/pool.js';

/** ext4's limit on hard links. */
const LINK_MAX = 65000;
const SYMLINK_MAX = 4095;

/** A new name: a byte string (bytestr.ts) of 1 to NAME_MAX bytes, without '/' or NUL. */
export function checkName(name: string): void {
  if (name.length === 0) throw new FsError('ENOENT', 'empty name');
  requireByteString(name, 'a name');
  if (name.length > NAME_MAX) throw new FsError('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`);
  if (name.includes('/') || name.includes('\0')) throw new FsError('EINVAL', 'name contains / or NUL');
}

/** The inode `name` names in `parent`, 0 when none: a miss is an answer (every name `tar x` makes is looked up first), not an error. */
export function find(core: FsCore, parent: number, name: string): number {
  const dir = core.dir(core.inode(parent));
  if (name === '.') return parent;
  if (name === '..') return core.inode(parent).parent || parent;
  // A byte string: its length is its byte count.
  if (name.length > NAME_MAX) throw new FsError('ENAMETOOLONG', `name longer than ${NAME_MAX} bytes`);
  return dir.get(name)?.ino ?? 0;
}

export function lookup(core: FsCore, parent: number, name: string): number {
  const ino = find(core, parent, name);
  if (ino === 0) throw new FsError('ENOENT', `no entry ${showName(name)}`);
  return ino;
}

export function resolve(core: FsCore, path: string): number {
  let ino = core.sb.rootIno;
  for (const part of path.split('/')) {
    if (part === '') continue;
    ino = lookup(core, ino, part);
  }
  return ino;
}

export function readdir(core: FsCore, ino: number): DirEntry[] {
  const inode = core.inode(ino);
  const dir = core.dir(inode);
  const out: DirEntry[] = [
    { name: '.', ino, type: S_IFDIR },
    { name: '..', ino: inode.parent || ino, type: S_IFDIR },
  ];
  for (const [name, slot] of dir.entries) out.push({ name, ino: slot.ino, type: slot.type });
  return out;
}

/** Make sure `parent` can take `name`: EEXIST, or a new block (ENOSPC) before anything changes. */
function prepareEntry(core: FsCore, parent: Inode, name: string): number {
  checkName(name);
  const dir = core.dir(parent);
  if (name === '.' || name === '..' || dir.get(name)) throw new FsError('EEXIST', `${showName(name)} exists`);
  let index = dir.findRoom(name);
  if (index < 0) {
    const last = dir.blocks[dir.blocks.length - 1];
    const block = core.inodes.allocMeta(last !== undefined ? last + 1 : undefined);
    index = dir.addBlock(block);
    parent.extents.add(index, block, 1);
    parent.size = dir.blocks.length * BLOCK_SIZE;
    parent.blocks++;
  }
  return index;
}

function touchDir(core: FsCore, dir: Inode, now: number): void {
  dir.mtimeMs = now;
  dir.ctimeMs = now;
  core.save(dir);
}

function newInode(core: FsCore, mode: number, owner: Owner, now: number): Inode {
  const inode = core.inodes.allocate();
  inode.mode = mode;
  inode.uid = owner.uid;
  inode.gid = owner.gid;
  inode.nlink = 1;
  inode.atimeMs = inode.mtimeMs = inode.ctimeMs = inode.crtimeMs = now;
  return inode;
}

export function create(core: FsCore, parentIno: number, name: string, mode: number, owner: Owner, rdev = 0): Inode {
  core.requireWritable();
  const parent = core.inode(parentIno);
  const type = (mode & S_IFMT) || S_IFREG;
  if (![S_IFREG, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK].includes(type)) throw new FsError('EINVAL', `cannot create file type ${type.toString(8)}`);
  const index = prepareEntry(core, parent, name);
  const now = Date.now();
  const inode = newInode(core, type | (mode & 0o7777), owner, now);
  if (type === S_IFCHR || type === S_IFBLK) inode.rdev = rdev;
  core.save(inode);
  core.dir(parent).insert(index, name, inode.ino, type);
  core.named(parent.ino, name, inode.ino);
  touchDir(core, parent, now);
  return inode;
}

export function mkdir(core: FsCore, parentIno: number, name: string, mode: number, owner: Owner): Inode {
  core.requireWritable();
  const parent = core.inode(parentIno);
  if (parent.nlink >= LINK_MAX) throw new FsError('EMLINK', 'too many subdirectories');
  const index = prepareEntry(core, parent, name);
  const block = core.inodes.allocMeta();
  const now = Date.now();
  let inode: Inode;
  try {
    inode = newInode(core, S_IFDIR | (mode & 0o7777), owner, now);
  } catch (err) {
    core.inodes.freeMeta(block);
    throw err;
  }
  inode.nlink = 2;
  inode.parent = parent.ino;
  inode.dir = new Directory(core.store, []);
  inode.dir.addBlock(block);
  inode.extents.add(0, block, 1);
  inode.size = BLOCK_SIZE;
  inode.blocks = 1;
  core.save(inode);
  core.dir(parent).insert(index, name, inode.ino, S_IFDIR);
  core.named(parent.ino, name, inode.ino);
  parent.nlink++;
  touchDir(core, parent, now);
  return inode;
}

export function symlink(core: FsCore, parentIno: number, name: string, target: string, owner: Owner): Inode {
  core.requireWritable();
  requireByteString(target, 'a symlink target');
  const bytes = toBytes(target);
  if (bytes.length === 0) throw new FsError('ENOENT', 'empty symlink target');
  if (bytes.length > SYMLINK_MAX) throw new FsError('ENAMETOOLONG', `symlink target longer than ${SYMLINK_MAX} bytes`);
  const parent = core.inode(parentIno);
  const index = prepareEntry(core, parent, name);
  const block = bytes.length > INLINE_BYTES ? core.inodes.allocMeta() : 0;
  const now = Date.now();
  let inode: Inode;
  try {
    inode = newInode(core, S_IFLNK | 0o777, owner, now);
  } catch (err) {
    if (block) core.inodes.freeMeta(block);
    throw err;
  }
  inode.size = bytes.length;
  if (block) {
    bytes.copy(core.store.fresh(block, 'raw'));
    inode.extents.add(0, block, 1);
    inode.blocks = 1;
  } else {
    inode.flags |= INODE_FLAG_INLINE_SYMLINK;
    inode.inline = bytes;
  }
  core.save(inode);
  core.dir(parent).insert(index, name, inode.ino, S_IFLNK);
  core.named(parent.ino, name, inode.ino);
  touchDir(core, parent, now);
  return inode;
}

export function readlink(core: FsCore, ino: number): string {
  const inode = core.inode(ino);
  if (inode.type !== S_IFLNK) throw new FsError('EINVAL', 'not a symbolic link');
  if (inode.flags & INODE_FLAG_INLINE_SYMLINK) return fromBytes(inode.inline);
  const block = inode.extents.lookup(0);
  if (block < 0 || inode.size > BLOCK_SIZE) throw new FsError('EIO', `corrupt symlink ${ino}; run daxvm fsck`);
  return fromBytes(core.store.load(block, 'raw', 'symlink block'), 0, inode.size);
}

export function link(core: FsCore, ino: number, parentIno: number, name: string): Inode {
  core.requireWritable();
  const inode = core.inode(ino);
  if (inode.type === S_IFDIR) throw new FsError('EPERM', 'hard links to directories are not allowed');
  if (inode.nlink >= LINK_MAX) throw new FsError('EMLINK', 'too many links');
  const parent = core.inode(parentIno);
  const index = prepareEntry(core, parent, name);
  const now = Date.now();
  core.dir(parent).insert(index, name, ino, inode.type);
  core.named(parent.ino, name, ino);
  inode.nlink++;
  inode.ctimeMs = now;
  core.save(inode);
  touchDir(core, parent, now);
  return inode;
}

/** fsck: a directory with no block gets its first one (`claim` is told its number). */
export function ensureDirBlock(core: FsCore, dir: Inode, claim: (block: number) => void): void {
  if (dir.extents.length > 0) return;
  const block = core.inodes.allocMeta();
  claim(block);
  const d = core.dir(dir);
  d.addBlock(block);
  dir.extents.add(0, block, 1);
  dir.size = BLOCK_SIZE;
  dir.blocks++;
  core.save(dir);
}

/** fsck: give an inode a name, leaving link counts to the caller. */
export function attach(core: FsCore, parentIno: number, name: string, child: Inode): void {
  const parent = core.inode(parentIno);
  const index = prepareEntry(core, parent, name);
  core.dir(parent).insert(index, name, child.ino, child.type);
  core.named(parent.ino, name, child.ino);
  core.save(child);
  touchDir(core, parent, Date.now());
}

export function unlink(core: FsCore, parentIno: number, name: string): void {
  core.requireWritable();
  const parent = core.inode(parentIno);
  const child = core.inode(lookup(core, parentIno, name));
  if (child.type === S_IFDIR) throw new FsError('EISDIR', `${showName(name)} is a directory`);
  const now = Date.now();
  core.dir(parent).remove(name);
  core.unnamed(parent.ino, name);
  child.nlink--;
  child.ctimeMs = now;
  core.save(child);
  touchDir(core, parent, now);
  core.reapIfUnused(child);
}

export function rmdir(core: FsCore, parentIno: number, name: string): void {
  core.requireWritable();
  if (name === '.') throw new FsError('EINVAL', 'cannot remove "."');
  if (name === '..') throw new FsError('ENOTEMPTY', 'cannot remove ".."');
  const parent = core.inode(parentIno);
  const child = core.inode(lookup(core, parentIno, name));
  if (child.type !== S_IFDIR) throw new FsError('ENOTDIR', `${showName(name)} is not a directory`);
  if (core.dir(child).size > 0) throw new FsError('ENOTEMPTY', `${showName(name)} is not empty`);
  const now = Date.now();
  core.dir(parent).remove(name);
  core.unnamed(parent.ino, name);
  parent.nlink--;
  child.nlink = 0;
  child.ctimeMs = now;
  // Saved even when the last close frees it: while it is open it lives on as
  // an orphan, and a crash before that close must find nlink 0 on media.
  core.save(child);
  touchDir(core, parent, now);
  core.reapIfUnused(child);
}

/** Is `ino` the directory `ancestor` or below it? */
function isWithin(core: FsCore, ino: number, ancestor: number): boolean {
  let cur = ino;
  for (let depth = 0; depth < 1 << 20; depth++) {
    if (cur === ancestor) return true;
    if (cur === core.sb.rootIno) return false;
    cur = core.inode(cur).parent;
  }
  throw new FsError('EIO', 'directory parent chain loops; run daxvm fsck');
}

export function rename(core: FsCore, srcParentIno: number, srcName: string, dstParentIno: number, dstName: string): void {
  core.requireWritable();
  if (srcName === '.' || srcName === '..' || dstName === '.' || dstName === '..') throw new FsError('EINVAL', 'cannot rename . or ..');
  const srcParent = core.inode(srcParentIno);
  const dstParent = core.inode(dstParentIno);
  const src = core.inode(lookup(core, srcParentIno, srcName));
  checkName(dstName);
  const dstSlot = core.dir(dstParent).get(dstName);
  if (srcParentIno === dstParentIno && srcName === dstName) return;
  if (dstSlot && dstSlot.ino === src.ino) return; // two names of one file: POSIX says do nothing
  const srcIsDir = src.type === S_IFDIR;
  if (srcIsDir && isWithin(core, dstParentIno, src.ino)) throw new FsError('EINVAL', 'cannot move a directory into itself');
  let dst: Inode | undefined;
  if (dstSlot) {
    dst = core.inode(dstSlot.ino);
    const dstIsDir = dst.type === S_IFDIR;
    if (srcIsDir && !dstIsDir) throw new FsError('ENOTDIR', `${showName(dstName)} is not a directory`);
    if (!srcIsDir && dstIsDir) throw new FsError('EISDIR', `${showName(dstName)} is a directory`);
    if (dstIsDir && core.dir(dst).size > 0) throw new FsError('ENOTEMPTY', `${showName(dstName)} is not empty`);
  } else if (srcIsDir && srcParentIno !== dstParentIno && dstParent.nlink >= LINK_MAX) {
    throw new FsError('EMLINK', 'too many subdirectories');
  }
  const index = dstSlot ? -1 : prepareEntry(core, dstParent, dstName);
  const now = Date.now();
  if (dstSlot) core.dir(dstParent).retarget(dstName, src.ino, src.type);
  else core.dir(dstParent).insert(index, dstName, src.ino, src.type);
  core.dir(srcParent).remove(srcName);
  core.named(dstParent.ino, dstName, src.ino);
  core.unnamed(srcParent.ino, srcName);
  if (srcIsDir) {
    srcParent.nlink--;
    dstParent.nlink++;
    src.parent = dstParent.ino;
  }
  if (dst) {
    if (dst.type === S_IFDIR) {
      dstParent.nlink--;
      dst.nlink = 0;
    } else {
      dst.nlink--;
    }
    dst.ctimeMs = now;
    core.save(dst);
  }
  src.ctimeMs = now;
  core.save(src);
  touchDir(core, srcParent, now);
  if (dstParent !== srcParent) touchDir(core, dstParent, now);
  if (dst) core.reapIfUnused(dst);
}
