// The FUSE layer without a kernel mount: errno mapping, and the low-level
// operations driven directly over a real FileSystem on a temp pool, the way
// the C side calls them (node ids, shared `num`/`data`/`recv` buffers):
// handles, O_APPEND, READDIRPLUS entries and lookup counts, the caller's
// credentials, unlinked inodes the kernel still knows, xattr sizes.
import t from 'tap';
import { constants } from 'node:fs';
import { FsError, ROOT_INO, S_IFDIR, S_IFREG, type FileSystemApi } from '../src/fs/index.js';
import { errnoNumber, errnoName, toNegErrno, setUnexpectedLogger } from '../src/fuse/errno.js';
import { fakeIo, N, SET, type Io, type LowLevelOps } from '../src/fuse/lowlevel.js';
import { buildOps } from '../src/fuse/ops.js';
import { MountState } from '../src/fuse/state.js';
import { openPool, tempPool } from './helpers/pool.js';

const E = (name: string) => -errnoNumber(name);

interface Harness { ops: Required<LowLevelOps>; io: Io; state: MountState; listed: Array<{ name: string; ino: number; off: number }> }

function harness(fsys: FileSystemApi, caller = { uid: 0, gid: 0 }): Harness {
  const listed: Harness['listed'] = [];
  const io = fakeIo((name, off) => { listed.push({ name, ino: io.num[N.INO]!, off }); return true; });
  io.num[N.CTX_UID] = caller.uid;
  io.num[N.CTX_GID] = caller.gid;
  const state = new MountState(fsys);
  state.io = io;
  return { ops: buildOps(state) as Required<LowLevelOps>, io, state, listed };
}

/** Put bytes in the receive buffer, as libfuse does, and return their offset there. */
function received(io: Io, bytes: Buffer): number {
  bytes.copy(io.recv, 64);
  return 64;
}

t.test('errno mapping', async (t) => {
  t.equal(errnoNumber('ENOENT'), 2);
  t.equal(errnoNumber('ENOTEMPTY'), 39);
  t.equal(errnoNumber('EFSCORRUPTED'), 117, 'EFSCORRUPTED is EUCLEAN');
  t.equal(errnoNumber('ENOSUCH'), 5, 'unknown: EIO');
  t.equal(errnoName(-2), 'ENOENT');
  const logged: string[] = [];
  const prev = setUnexpectedLogger((op, what, err) => logged.push(`${op} ${what} ${(err as Error).message}`));
  t.teardown(() => { setUnexpectedLogger(prev); });
  t.equal(toNegErrno(new FsError('EEXIST'), 'mkdir', '/a'), -17);
  t.same(logged, [], 'FsError is not logged');
  t.equal(toNegErrno(new TypeError('oops'), 'getattr', '/b'), -5, 'a bug: EIO');
  const sys = Object.assign(new Error('no space'), { errno: -28, code: 'ENOSPC', syscall: 'write' });
  t.equal(toNegErrno(sys, 'write', '/c'), -28, 'a system error keeps its errno');
  t.equal(logged.length, 2, 'unexpected errors are logged');
  t.match(logged[0], /^getattr \/b oops/);
});

t.test('operations over a real file system', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const { ops, io, listed } = harness(fsys);
  const n = io.num;

  t.equal(ops.mkdir(ROOT_INO, 'd', 0o755), 0);
  const dino = n[N.INO]!;
  t.equal(n[N.MODE]! & S_IFDIR, S_IFDIR, 'mkdir answers a directory entry');
  t.equal(ops.create(dino, 'f', S_IFREG | 0o644, constants.O_RDWR), 0, 'create');
  const fino = n[N.INO]!;
  const fh = n[N.FH]!;
  t.ok(fh > 0, 'a file handle');
  t.equal(ops.write(fino, fh, 0, 5, received(io, Buffer.from('hello'))), 5);
  t.equal(ops.read(fino, fh, 0, 16), 5);
  t.equal(io.data.subarray(0, 5).toString(), 'hello');
  t.equal(ops.release(fino, fh, 0), 0);
  t.equal(ops.read(fino, fh, 0, 16), E('EBADF'), 'released handle: EBADF');

  // O_APPEND: at the end, whatever offset comes with the write
  t.equal(ops.open(fino, constants.O_WRONLY | constants.O_APPEND), 0);
  const ofh = n[N.FH]!;
  t.equal(ops.write(fino, ofh, 0, 6, received(io, Buffer.from(' world'))), 6);
  ops.release(fino, ofh, 0);
  t.equal(ops.getattr(fino, 0), 0);
  t.equal(n[N.SIZE], 11, 'appended');
  t.ok(n[N.ATTR_TIMEOUT]! > 0, 'attributes may be cached');

  // O_TRUNC arrives with open (atomic_o_trunc)
  t.equal(ops.open(fino, constants.O_WRONLY | constants.O_TRUNC), 0);
  ops.release(fino, n[N.FH]!, 0);
  ops.getattr(fino, 0);
  t.equal(n[N.SIZE], 0, 'truncated at open');

  // lookup of a hard link: the same node id
  t.equal(ops.link(fino, ROOT_INO, 'g'), 0);
  t.equal(n[N.INO], fino, 'link answers the same inode');
  t.equal(ops.lookup(ROOT_INO, 'g'), 0);
  t.match({ ino: n[N.INO], nlink: n[N.NLINK] }, { ino: fino, nlink: 2 });

  // READDIRPLUS: ".", "..", then whole entries
  t.equal(ops.opendir(dino, 0), 0);
  const dfh = n[N.FH]!;
  t.equal(ops.readdir(dino, dfh, 0, 1), 0);
  t.same(listed.map(e => e.name), ['.', '..', 'f']);
  t.same(listed.map(e => e.off), [1, 2, 3], 'offsets are the next index');
  t.equal(listed[2]!.ino, fino);
  listed.length = 0;
  t.equal(ops.readdir(dino, dfh, 3, 1), 0);
  t.same(listed, [], 'past the end: nothing');
  ops.releasedir(dino, dfh);

  t.equal(ops.lookup(ROOT_INO, 'nope'), E('ENOENT'));
  t.equal(ops.mkdir(ROOT_INO, 'd', 0o755), E('EEXIST'));
  t.equal(ops.unlink(dino, 'f'), 0);
  t.equal(ops.rmdir(ROOT_INO, 'd'), 0);
  t.equal(ops.lookup(ROOT_INO, '.daxvm'), 0, 'the control directory');
  t.ok(n[N.ATTR_TIMEOUT]! > 0, 'its attributes may be cached');
  t.equal(ops.lookup(n[N.INO]!, 'stats'), 0, 'a control file');
  t.equal(n[N.ATTR_TIMEOUT], 0, 'its attributes are never cached');
  t.equal(ops.mkdir(ROOT_INO, '.daxvm', 0o755), E('EEXIST'), 'its name is reserved');
});

t.test("an unlinked inode lives while the kernel knows it or it is open", async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const { ops, io } = harness(fsys);
  const n = io.num;
  ops.mkdir(ROOT_INO, 'd', 0o755);
  const dino = n[N.INO]!;
  ops.create(dino, 'big', S_IFREG | 0o644, constants.O_RDWR);
  const ino = n[N.INO]!;
  const fh = n[N.FH]!;
  const data = Buffer.alloc(1 << 20, 7);
  data.copy(io.recv, 0);
  t.equal(ops.write(ino, fh, 0, data.length, 0), data.length);

  const beforeRm = fsys.statfs().bfree;
  t.equal(ops.unlink(dino, 'big'), 0, 'unlink while open');
  t.equal(fsys.statfs().bfree, beforeRm, 'blocks kept');
  t.equal(ops.rmdir(ROOT_INO, 'd'), 0, 'rmdir of its directory works');
  t.equal(ops.getattr(ino, 0), 0, 'getattr by node id, no handle (fstat)');
  t.equal(n[N.NLINK], 0, 'nlink 0');
  t.equal(ops.getattr(dino, 0), 0, 'the removed directory too');
  t.equal(ops.read(ino, fh, 0, 4), 4, 'still readable through its handle');
  t.equal(ops.release(ino, fh, 0), 0, 'last close');
  t.equal(fsys.statfs().bfree, beforeRm, 'kept while the kernel still knows it');
  ops.forget(ino, 1);
  t.ok(fsys.statfs().bfree - beforeRm >= 256, 'freed at its last forget');
  t.equal(ops.getattr(ino, 0), E('ENOENT'), 'gone');
});

t.test("the caller's credentials", async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const root = harness(fsys);
  root.ops.mkdir(ROOT_INO, 'shared', 0o777 | 0o2000);
  const shared = root.io.num[N.INO]!;
  root.ops.setattr(shared, 0, SET.GID, 0, 0, 4242, 0, 0, 0);

  const user = harness(fsys, { uid: 1234, gid: 5678 });
  const n = user.io.num;
  t.equal(user.ops.create(ROOT_INO, 'mine', S_IFREG | 0o644, constants.O_RDWR), 0);
  t.match({ uid: n[N.UID], gid: n[N.GID] }, { uid: 1234, gid: 5678 }, "a new file is the caller's");
  t.equal(user.ops.mkdir(shared, 'sub', 0o755), 0);
  t.match({ gid: n[N.GID], setgid: n[N.MODE]! & 0o2000 }, { gid: 4242, setgid: 0o2000 },
    'a setgid parent gives its group and its setgid bit');
  t.equal(user.ops.symlink(shared, 'l', 'target'), 0);
  t.match({ uid: n[N.UID], gid: n[N.GID] }, { uid: 1234, gid: 4242 }, 'symlinks too');
});

t.test('setattr: times alone, NOW, sizes', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const { ops, io } = harness(fsys);
  const n = io.num;
  ops.create(ROOT_INO, 'f', S_IFREG | 0o644, constants.O_RDWR);
  const ino = n[N.INO]!;
  ops.release(ino, n[N.FH]!, 0);
  t.equal(ops.setattr(ino, 0, SET.ATIME | SET.MTIME, 0, 0, 0, 0, 1000, 2000), 0);
  t.match({ a: n[N.ATIME], m: n[N.MTIME] }, { a: 1000, m: 2000 }, 'both');
  ops.setattr(ino, 0, SET.MTIME, 0, 0, 0, 0, 0, 3000);
  t.match({ a: n[N.ATIME], m: n[N.MTIME] }, { a: 1000, m: 3000 }, 'mtime only (touch -m)');
  const before = Date.now();
  ops.setattr(ino, 0, SET.ATIME_NOW | SET.MTIME_NOW, 0, 0, 0, 0, 0, 0);
  t.ok(n[N.MTIME]! >= before && n[N.ATIME]! >= before, 'UTIME_NOW');
  ops.setattr(ino, 0, SET.SIZE, 0, 0, 0, 12345, 0, 0);
  t.equal(n[N.SIZE], 12345, 'truncate');
});

t.test('unexpected exceptions answer EIO, never crash', async (t) => {
  const prev = setUnexpectedLogger(() => {});
  t.teardown(() => { setUnexpectedLogger(prev); });
  const broken = new Proxy({}, { get: () => () => { throw new TypeError('bug'); } }) as FileSystemApi;
  const { ops } = harness(broken);
  t.equal(ops.getattr(5, 0), E('EIO'));
  t.equal(ops.mkdir(ROOT_INO, 'a', 0o755), E('EIO'));
});

t.test('xattrs: sizes and values, names that cannot exist', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const { ops, io } = harness(fsys);
  ops.create(ROOT_INO, 'f', S_IFREG | 0o644, constants.O_RDWR);
  const ino = io.num[N.INO]!;
  const at = received(io, Buffer.from('0123456789'));
  t.equal(ops.setxattr(ino, 'user.x', at, 10, 0), 0);
  io.recv.fill(0, at, at + 10); // the receive buffer is reused: the value was copied
  t.equal(ops.getxattr(ino, 'user.x', 0), 10, 'size query');
  t.equal(ops.getxattr(ino, 'user.x', 32), 10);
  t.equal(io.data.subarray(0, 10).toString(), '0123456789');
  t.equal(ops.getxattr(ino, 'security.selinux', 0), E('ENODATA'), 'other namespaces: ENODATA at once');
  t.equal(ops.setxattr(ino, 'security.foo', at, 10, 0), E('EOPNOTSUPP'), 'and refused when set: never stored unseen');
  ops.setxattr(ino, 'user.bb', at, 0, 0);
  t.equal(ops.listxattr(ino, 0), 15, 'list size query');
  t.equal(ops.listxattr(ino, 64), 15);
  t.equal(io.data.subarray(0, 15).toString(), 'user.x\0user.bb\0');
  t.equal(ops.getxattr(ino, 'user.daxvm.ppt', 0) > 0, true, 'the computed attribute');
  t.equal(ops.setxattr(ino, 'user.daxvm.ppt', at, 1, 0), E('EPERM'));
});
