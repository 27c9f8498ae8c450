// The FUSE layer without a kernel mount: errno mapping, statfs scaling, stat
// encoding, and the operations driven directly over a real FileSystem on a
// temp pool (handles, O_APPEND, "." and "..", unlink of open files through
// libfuse's .fuse_hidden renames, xattr buffer sizes).
import t from 'tap';
import { constants } from 'node:fs';
import { FsError, S_IFDIR, S_IFREG, type FileSystemApi } from '../src/fs/index.js';
import { errnoNumber, errnoName, toNegErrno, setUnexpectedLogger } from '../src/fuse/errno.js';
import { scaleStatfs } from '../src/fuse/ops-attrs.js';
import { statArray, DaxFuse, type DaxOps } from '../src/fuse/binding.js';
import { buildOps } from '../src/fuse/ops.js';
import { MountState } from '../src/fuse/state.js';
import { openPool, tempPool } from './helpers/pool.js';

const E = (name: string) => -errnoNumber(name);

/** Call an op whose callback is (err, value?): its callbacks are synchronous. */
function call<T = unknown>(fn: (...a: any[]) => void, ...args: unknown[]): { err: number; value: T | undefined } {
  let out: { err: number; value: T | undefined } | undefined;
  fn(...args, (err: number, value?: T) => { out = { err, value }; });
  if (!out) throw new Error('callback not called synchronously');
  return out;
}
/** read/write: callback(result). */
function count(fn: (...a: any[]) => void, ...args: unknown[]): number {
  let n: number | undefined;
  fn(...args, (r: number) => { n = r; });
  if (n === undefined) throw new Error('callback not called synchronously');
  return n;
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

t.test('statfs scaling for 32-bit counts', async (t) => {
  const small = { bsize: 4096, blocks: 65536, bfree: 1000, bavail: 1000, files: 100, ffree: 50, namemax: 255 };
  t.match(scaleStatfs(small), { bsize: 4096, frsize: 4096, blocks: 65536, bfree: 1000, files: 100, ffree: 50, favail: 50, namemax: 255 });
  const big = { bsize: 4096, blocks: 2 ** 34, bfree: 2 ** 33 + 3, bavail: 2 ** 33, files: 2 ** 40, ffree: 2 ** 40, namemax: 255 };
  const s = scaleStatfs(big);
  t.ok(s.blocks <= 0xffffffff && s.bfree <= 0xffffffff && s.files <= 0xffffffff, 'counts fit 32 bits');
  t.equal(s.blocks * s.frsize, big.blocks * big.bsize, 'same total size');
  t.equal(s.bsize, s.frsize);
});

t.test('stat encoding keeps nlink 0 and 64-bit sizes', async (t) => {
  const a = statArray({ mode: S_IFREG | 0o644, nlink: 0, size: 2 ** 33 + 5, ino: 7, mtimeMs: 1_700_000_000_123 });
  t.equal(a[6], 0, 'nlink');
  t.equal(a[3]! + a[4]! * 2 ** 32, 2 ** 33 + 5, 'size');
  t.equal(a[7], 7);
  t.equal(a[14]! + a[15]! * 2 ** 32, 1_700_000_000_123, 'mtime ms');
});

t.test('operations over a real file system', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));

  t.equal(call(ops.mkdir, '/d', 0o755).err, 0);
  const c = call<number>(ops.create, '/d/f', S_IFREG | 0o644);
  t.equal(c.err, 0, 'create');
  const fh = c.value!;
  t.ok(fh > 0, 'a file handle');
  t.equal(count(ops.write, '/d/f', fh, Buffer.from('hello'), 5, 0), 5);
  const buf = Buffer.alloc(16);
  t.equal(count(ops.read, '/d/f', fh, buf, 16, 0), 5);
  t.equal(buf.subarray(0, 5).toString(), 'hello');
  t.equal(call(ops.release, '/d/f', fh).err, 0);
  t.equal(count(ops.read, '/d/f', fh, buf, 16, 0), E('EBADF'), 'released handle: EBADF');

  // O_APPEND: at the end, whatever offset comes with the write
  const o = call<number>(ops.open, '/d/f', constants.O_WRONLY | constants.O_APPEND);
  t.equal(o.err, 0);
  t.equal(count(ops.write, '/d/f', o.value!, Buffer.from(' world'), 6, 0), 6);
  call(ops.release, '/d/f', o.value!);
  t.equal(call<{ size: number }>(ops.getattr, '/d/f').value!.size, 11, 'appended');

  // "." and ".." with their inode numbers
  const root = call<{ ino: number }>(ops.getattr, '/').value!.ino;
  const dino = call<{ ino: number }>(ops.getattr, '/d').value!.ino;
  const list = call<{ name: string; ino: number; type: number }[]>(ops.readdir, '/d').value!;
  t.match(list.slice(0, 2), [{ name: '.', ino: dino, type: S_IFDIR }, { name: '..', ino: root, type: S_IFDIR }]);
  t.same(list.slice(2).map(e => e.name), ['f']);

  t.equal(call(ops.getattr, '/nope').err, E('ENOENT'));
  t.equal(call(ops.mkdir, '/d', 0o755).err, E('EEXIST'));
  t.equal(call(ops.rmdir, '/d').err, E('ENOTEMPTY'));
});

t.test('unlink of an open file, as libfuse 2.9 does it', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));
  call(ops.mkdir, '/d', 0o755);
  const fh = call<number>(ops.create, '/d/big', S_IFREG | 0o644).value!;
  const data = Buffer.alloc(1 << 20, 7);
  t.equal(count(ops.write, '/d/big', fh, data, data.length, 0), data.length);

  // rm: libfuse renames the open file to a hidden name
  const hidden = '/d/.fuse_hidden0000000200000001';
  const beforeRm = fsys.statfs().bfree;
  t.equal(call(ops.rename, '/d/big', hidden).err, 0, 'rename to the hidden name');
  t.equal(fsys.statfs().bfree, beforeRm, 'blocks kept while open');
  t.same(call<{ name: string }[]>(ops.readdir, '/d').value!.map(e => e.name), ['.', '..'], 'gone from the directory');
  const st = call<{ nlink: number; size: number }>(ops.getattr, hidden).value!;
  t.match(st, { nlink: 0, size: data.length }, 'the hidden name still answers getattr, nlink 0');
  t.equal(call(ops.rmdir, '/d').err, 0, 'rmdir of its directory works');
  const buf = Buffer.alloc(4);
  t.equal(count(ops.read, hidden, fh, buf, 4, 0), 4, 'still readable through its handle');

  const beforeClose = fsys.statfs().bfree;
  t.equal(call(ops.release, hidden, fh).err, 0, 'last close');
  t.ok(fsys.statfs().bfree - beforeClose >= 256, 'its blocks are freed at the last close');
  t.equal(call(ops.unlink, hidden).err, 0, "libfuse's unlink of the hidden name afterwards is harmless");
  t.equal(call(ops.getattr, hidden).err, E('ENOENT'));

  // a file that is not open is renamed to a hidden-looking name for real
  call<number>(ops.create, '/x', S_IFREG | 0o644);
  const fh2 = call<number>(ops.create, '/y', S_IFREG | 0o644).value!;
  call(ops.release, '/y', fh2);
  t.equal(call(ops.rename, '/y', '/.fuse_hidden00000000000000ff').err, 0);
  t.equal(call(ops.getattr, '/.fuse_hidden00000000000000ff').err, 0, 'an ordinary rename');
});

t.test('ops with a handle and no path: libfuse lost the name (its directory was removed)', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));
  call(ops.mkdir, '/d', 0o755);
  const fh = call<number>(ops.create, '/d/f', S_IFREG | 0o644).value!;
  const data = Buffer.alloc(1 << 20, 5);
  t.equal(count(ops.write, '/d/f', fh, data, data.length, 0), data.length);
  t.equal(call(ops.rename, '/d/f', '/d/.fuse_hidden0000000300000001').err, 0, 'libfuse hides it');
  t.equal(call(ops.rmdir, '/d').err, 0, 'rmdir');
  // from here on, libfuse passes path null (flag_nullpath_ok)
  t.match(call(ops.fgetattr, null, fh).value, { nlink: 0, size: data.length }, 'fgetattr by the handle');
  t.equal(count(ops.write, null, fh, Buffer.from('abc'), 3, 10), 3, 'write');
  const buf = Buffer.alloc(16);
  t.equal(count(ops.read, null, fh, buf, 16, 8), 16, 'read');
  t.same(buf.subarray(0, 6), Buffer.from([5, 5, 0x61, 0x62, 0x63, 5]), 'the bytes written');
  t.equal(call(ops.ftruncate, null, fh, 4096).err, 0, 'ftruncate');
  t.equal(call(ops.fsync, null, 0, fh).err, 0, 'fsync');
  t.match(call(ops.fgetattr, null, fh).value, { size: 4096 });
  t.equal(call(ops.fsync, null, 0, 0).err, E('EBADF'), 'neither path nor handle: EBADF');
  t.same(call(ops.readdir, null).value, [], 'a removed directory lists nothing');
  t.equal(call(ops.fsyncdir, null, 0, 0).err, 0, 'fsyncdir of a removed directory');
  const before = fsys.statfs().bfree;
  t.equal(call(ops.release, null, fh).err, 0, 'release');
  t.ok(fsys.statfs().bfree > before, 'its blocks are freed at the last close');
});

t.test('utimens: null leaves that time as is', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));
  call(ops.release, '/f', call<number>(ops.create, '/f', S_IFREG | 0o644).value!);
  t.equal(call(ops.utimens, '/f', 1000, 2000).err, 0);
  t.match(call(ops.getattr, '/f').value, { atimeMs: 1000, mtimeMs: 2000 }, 'both');
  t.equal(call(ops.utimens, '/f', null, 3000).err, 0);
  t.match(call(ops.getattr, '/f').value, { atimeMs: 1000, mtimeMs: 3000 }, 'mtime only (touch -m)');
  t.equal(call(ops.utimens, '/f', 4000, null).err, 0);
  t.match(call(ops.getattr, '/f').value, { atimeMs: 4000, mtimeMs: 3000 }, 'atime only (touch -a)');
});

t.test('unexpected exceptions answer EIO, never crash', async (t) => {
  const prev = setUnexpectedLogger(() => {});
  t.teardown(() => { setUnexpectedLogger(prev); });
  const broken = new Proxy({}, { get: () => () => { throw new TypeError('bug'); } }) as FileSystemApi;
  const ops = buildOps(new MountState(broken, { owner: { uid: 0, gid: 0 } }));
  t.equal(call(ops.getattr, '/a').err, E('EIO'));
  t.equal(call(ops.mkdir, '/a', 0o755).err, E('EIO'));
});

t.test('xattr buffers: size query, ERANGE, values', async (t) => {
  const value = Buffer.from('0123456789');
  const fake = {
    getxattr: (_p: string, _n: string, cb: (e: number, v?: Buffer) => void) => cb(0, value),
    listxattr: (_p: string, cb: (e: number, l?: string[]) => void) => cb(0, ['user.a', 'user.bb']),
  } as unknown as DaxOps;
  const f = new DaxFuse('/tmp/daxvm-never-mounted', fake, '') as unknown as Record<string, (...a: unknown[]) => void>;
  const res = (fn: string, ...args: unknown[]) => {
    let r: number | undefined;
    f[fn]!.call(f, (n: number) => { r = n; }, ...args);
    return r;
  };
  t.equal(res('_op_getxattr', '/f', 'user.x', Buffer.alloc(0)), 10, 'size query');
  t.equal(res('_op_getxattr', '/f', 'user.x', Buffer.alloc(4)), -34, 'ERANGE');
  const big = Buffer.alloc(32);
  t.equal(res('_op_getxattr', '/f', 'user.x', big), 10);
  t.equal(big.subarray(0, 10).toString(), '0123456789');
  t.equal(res('_op_listxattr', '/f', Buffer.alloc(0)), 15, 'list size query');
  t.equal(res('_op_listxattr', '/f', Buffer.alloc(8)), -34, 'list ERANGE');
  const lb = Buffer.alloc(64);
  t.equal(res('_op_listxattr', '/f', lb), 15);
  t.equal(lb.subarray(0, 15).toString(), 'user.a\0user.bb\0');
});
