// The `.daxvm/` control directory and `user.daxvm.ppt`, driven through the
// FUSE operations over a real file system on a temp pool (no kernel mount):
// routing of every op under /.daxvm, sizes and snapshots, knob writes,
// refusals, the reserved name.
import t from 'tap';
import fs, { constants } from 'node:fs';
import { ROOT_INO, S_IFDIR, S_IFMT, S_IFREG } from '../src/fs/index.js';
import { errnoNumber } from '../src/fuse/errno.js';
import { buildOps } from '../src/fuse/ops.js';
import { MountState } from '../src/fuse/state.js';
import { openPool, tempPool } from './helpers/pool.js';

const E = (name: string) => -errnoNumber(name);

function call<T = unknown>(fn: (...a: any[]) => void, ...args: unknown[]): { err: number; value: T | undefined } {
  let out: { err: number; value: T | undefined } | undefined;
  fn(...args, (err: number, value?: T) => { out = { err, value }; });
  if (!out) throw new Error('callback not called synchronously');
  return out;
}
function count(fn: (...a: any[]) => void, ...args: unknown[]): number {
  let n: number | undefined;
  fn(...args, (r: number) => { n = r; });
  if (n === undefined) throw new Error('callback not called synchronously');
  return n;
}

interface A { ino: number; mode: number; size: number; nlink: number }
interface Entry { name: string; ino: number; type: number }

t.test('listing, attributes, reading', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));

  const root = call<Entry[]>(ops.readdir, '/').value!;
  t.same(root.map((e) => e.name), ['.', '..', '.daxvm'], 'the root lists .daxvm');
  const dir = call<A>(ops.getattr, '/.daxvm').value!;
  t.equal(dir.mode, S_IFDIR | 0o555);
  t.equal(root[2]!.ino, dir.ino, 'same inode number in readdir and getattr');
  t.ok(dir.ino > 2 ** 31 && dir.ino < 2 ** 32, 'an inode number no file gets, within 32 bits');
  t.equal(call<A>(ops.getattr, '/').value!.nlink, fsys.getattr(ROOT_INO).nlink + 1, 'root nlink counts it');

  const names = call<Entry[]>(ops.readdir, '/.daxvm').value!;
  t.same(names.map((e) => e.name), ['.', '..', 'page_tables_on', 'msync', 'zeroout_blocks', 'zombie_max_pages', 'kbytes_occupied', 'pool', 'stats']);
  t.equal(names[1]!.ino, ROOT_INO, '.. is the root');
  t.ok(names.slice(2).every((e) => e.type === S_IFREG));

  for (const e of names.slice(2)) {
    const a = call<A>(ops.getattr, `/.daxvm/${e.name}`).value!;
    t.equal(a.ino, e.ino, `${e.name}: inode number`);
    const fh = call<number>(ops.open, `/.daxvm/${e.name}`, constants.O_RDONLY).value!;
    const buf = Buffer.alloc(8192);
    const n = count(ops.read, `/.daxvm/${e.name}`, fh, buf, buf.length, 0);
    t.equal(n, a.size, `${e.name}: st_size is the content's length`);
    t.equal(count(ops.read, `/.daxvm/${e.name}`, fh, buf, buf.length, n), 0, `${e.name}: then EOF`);
    t.equal(call(ops.release, `/.daxvm/${e.name}`, fh).err, 0);
  }
  const fh = call<number>(ops.open, '/.daxvm/pool', constants.O_RDONLY).value!;
  const buf = Buffer.alloc(4);
  t.equal(count(ops.read, '/.daxvm/pool', fh, buf, 4, 1), 4, 'reads at an offset');
  t.equal(buf.toString(), fsys.poolPath.slice(1, 5));
  call(ops.release, '/.daxvm/pool', fh);

  t.equal(call(ops.getattr, '/.daxvm/nope').err, E('ENOENT'));
  t.equal(call(ops.getattr, '/.daxvm/stats/x').err, E('ENOENT'));
  t.equal(call(ops.readdir, '/.daxvm/stats').err, E('ENOTDIR'));
  t.equal(call(ops.readlink, '/.daxvm/stats').err, E('EINVAL'));
  t.equal(call(ops.open, '/.daxvm', constants.O_RDONLY).err, E('EISDIR'));
  t.same(call(ops.listxattr, '/.daxvm/stats').value, []);
  t.equal(call(ops.getxattr, '/.daxvm/stats', 'user.x').err, E('ENODATA'));
});

t.test('knob writes, snapshots, refusals', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));
  const P = '/.daxvm/zombie_max_pages';

  // As `echo 1234 > knob`: open for writing, truncate (no-op), write.
  const w = call<number>(ops.open, P, constants.O_WRONLY | constants.O_TRUNC).value!;
  const reader = call<number>(ops.open, P, constants.O_RDONLY).value!; // snapshot: "33\n"
  t.equal(call(ops.ftruncate, P, w, 0).err, 0, 'ftruncate: nothing to do');
  t.equal(call(ops.truncate, P, 0).err, 0, 'truncate: nothing to do');
  t.equal(count(ops.write, P, w, Buffer.from('1234\n'), 5, 0), 5);
  t.equal(fsys.knobs().zombieMaxPages, 1234, 'applied at write');
  t.equal(count(ops.write, P, w, Buffer.from('banana\n'), 7, 5), E('EINVAL'), 'banana: EINVAL');
  t.equal(count(ops.write, P, w, Buffer.from('0\n'), 2, 0), E('EINVAL'), 'out of range: EINVAL');
  t.equal(fsys.knobs().zombieMaxPages, 1234, 'unchanged');
  t.equal(call(ops.fsync, P, 0, w).err, 0);
  t.equal(call(ops.release, P, w).err, 0);

  const buf = Buffer.alloc(64);
  t.equal(call<A>(ops.fgetattr, P, reader).value!.size, 3, 'fgetattr: the snapshot\'s size');
  t.equal(call<A>(ops.getattr, P).value!.size, 5, 'getattr: the current content\'s size');
  t.equal(buf.subarray(0, count(ops.read, P, reader, buf, 64, 0)).toString(), '33\n', 'the reader keeps its snapshot');
  t.equal(call(ops.release, P, reader).err, 0);
  const again = call<number>(ops.open, P, constants.O_RDONLY).value!;
  t.equal(buf.subarray(0, count(ops.read, P, again, buf, 64, 0)).toString(), '1234\n', 'a new open sees the new value');
  // A shorter value while a longer snapshot is open: getattr never reports less than an open reader holds.
  const w2 = call<number>(ops.open, P, constants.O_WRONLY).value!;
  t.equal(count(ops.write, P, w2, Buffer.from('7'), 1, 0), 1, 'printf 7 (no newline)');
  call(ops.release, P, w2);
  t.equal(fsys.knobs().zombieMaxPages, 7);
  t.equal(call<A>(ops.getattr, P).value!.size, 5, 'getattr: the longest open snapshot');
  call(ops.release, P, again);

  const pt = call<number>(ops.open, '/.daxvm/page_tables_on', constants.O_RDWR).value!;
  t.equal(count(ops.write, '/.daxvm/page_tables_on', pt, Buffer.from('1\n'), 2, 0), 2);
  t.equal(fsys.knobs().pageTablesOn, 1);
  call(ops.release, '/.daxvm/page_tables_on', pt);

  for (const ro of ['pool', 'stats', 'kbytes_occupied']) {
    t.equal(call(ops.open, `/.daxvm/${ro}`, constants.O_WRONLY).err, E('EACCES'), `${ro}: open for writing: EACCES`);
    t.equal(call(ops.open, `/.daxvm/${ro}`, constants.O_RDWR).err, E('EACCES'), `${ro}: O_RDWR: EACCES`);
    t.equal(call(ops.truncate, `/.daxvm/${ro}`, 0).err, E('EACCES'), `${ro}: truncate: EACCES`);
    // `pool` is readable as the pool file is (its read bits; the temp pool is 0600): see mount-perms.
    const want = ro === 'pool' ? (fs.statSync(fsys.poolPath).mode & 0o444) : 0o444;
    t.equal(call<A>(ops.getattr, `/.daxvm/${ro}`).value!.mode, S_IFREG | want, `${ro}: mode ${want.toString(8)}`);
  }
  t.equal(call<A>(ops.getattr, '/.daxvm/msync').value!.mode, S_IFREG | 0o644);

  call(ops.release, '/f', call<number>(ops.create, '/f', S_IFREG | 0o644).value!);
  const refusals: Array<[string, () => { err: number }, string]> = [
    ['create in', () => call(ops.create, '/.daxvm/x', S_IFREG | 0o644), 'EPERM'],
    ['mknod in', () => call(ops.mknod, '/.daxvm/x', S_IFREG | 0o644, 0), 'EPERM'],
    ['mkdir in', () => call(ops.mkdir, '/.daxvm/x', 0o755), 'EPERM'],
    ['symlink in', () => call(ops.symlink, 't', '/.daxvm/x'), 'EPERM'],
    ['unlink', () => call(ops.unlink, '/.daxvm/stats'), 'EPERM'],
    ['rmdir', () => call(ops.rmdir, '/.daxvm'), 'EPERM'],
    ['rename within', () => call(ops.rename, '/.daxvm/stats', '/.daxvm/s'), 'EPERM'],
    ['rename out', () => call(ops.rename, '/.daxvm/stats', '/s'), 'EPERM'],
    ['rename in', () => call(ops.rename, '/f', '/.daxvm/f'), 'EPERM'],
    ['rename the dir', () => call(ops.rename, '/.daxvm', '/c'), 'EPERM'],
    ['link of', () => call(ops.link, '/.daxvm/stats', '/s'), 'EPERM'],
    ['link into', () => call(ops.link, '/f', '/.daxvm/f'), 'EPERM'],
    ['chmod', () => call(ops.chmod, '/.daxvm/msync', 0o600), 'EPERM'],
    ['chown', () => call(ops.chown, '/.daxvm/msync', 1, 1), 'EPERM'],
    ['setxattr', () => call(ops.setxattr, '/.daxvm/msync', 'user.a', Buffer.from('1'), 0, 0), 'EPERM'],
    ['removexattr', () => call(ops.removexattr, '/.daxvm/msync', 'user.a'), 'EPERM'],
    ['mkdir .daxvm', () => call(ops.mkdir, '/.daxvm', 0o755), 'EEXIST'],
    ['create .daxvm', () => call(ops.create, '/.daxvm', S_IFREG | 0o644), 'EEXIST'],
    ['symlink .daxvm', () => call(ops.symlink, 't', '/.daxvm'), 'EEXIST'],
    ['link to .daxvm', () => call(ops.link, '/f', '/.daxvm'), 'EEXIST'],
    ['rename onto .daxvm', () => call(ops.rename, '/f', '/.daxvm'), 'EEXIST'],
  ];
  for (const [what, op, code] of refusals) t.equal(op().err, E(code), `${what}: ${code}`);
  t.equal(call(ops.utimens, '/.daxvm/msync', 1000, 2000).err, 0, 'utimens: accepted, ignored');
  t.equal(call(ops.utimens, '/.daxvm/nope', 1000, 2000).err, E('ENOENT'));
  t.same(call<Entry[]>(ops.readdir, '/').value!.map((e) => e.name).sort(), ['.', '..', '.daxvm', 'f'], 'nothing created or moved');
});

t.test('a real .daxvm entry in an old pool is shadowed', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  fsys.mkdir(ROOT_INO, '.daxvm', S_IFDIR | 0o755, { uid: 0, gid: 0 });
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));
  const root = call<Entry[]>(ops.readdir, '/').value!;
  t.equal(root.filter((e) => e.name === '.daxvm').length, 1, 'listed once');
  t.equal(call<A>(ops.getattr, '/.daxvm').value!.mode, S_IFDIR | 0o555, 'the control directory');
});

t.test('user.daxvm.ppt', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const ops = buildOps(new MountState(fsys, { owner: { uid: 0, gid: 0 } }));
  fsys.setKnob('pageTablesOn', 1);
  const fh = call<number>(ops.create, '/f', S_IFREG | 0o644).value!;
  count(ops.write, '/f', fh, Buffer.alloc(8192, 1), 8192, 0);
  call(ops.release, '/f', fh);
  call(ops.mkdir, '/d', 0o755);
  const ino = call<A>(ops.getattr, '/f').value!.ino;
  const v = call<Buffer>(ops.getxattr, '/f', 'user.daxvm.ppt');
  t.equal(v.err, 0);
  t.equal(v.value!.toString(), fsys.pptInfo(ino), 'answers fs.pptInfo');
  t.match(v.value!.toString(), new RegExp(`^ino=${ino} gen=\\d+ seq=\\d+ root=[1-9]\\d* level=1 nodes=1 size=8192$`));
  t.equal(call(ops.getxattr, '/d', 'user.daxvm.ppt').err, E('ENODATA'), 'directories: ENODATA');
  t.equal(call(ops.setxattr, '/f', 'user.daxvm.ppt', Buffer.from('x'), 0, 0).err, E('EPERM'));
  t.equal(call(ops.setxattr, '/d', 'user.daxvm.ppt', Buffer.from('x'), 0, 0).err, E('EPERM'));
  t.equal(call(ops.removexattr, '/f', 'user.daxvm.ppt').err, E('EPERM'));
  t.equal(call(ops.setxattr, '/f', 'user.k', Buffer.from('v'), 0, 0).err, 0);
  t.same(call(ops.listxattr, '/f').value, ['user.k'], 'not listed');
  t.equal((call<A>(ops.getattr, '/f').value!.mode & S_IFMT), S_IFREG);
});
