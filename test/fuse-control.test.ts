// The `.daxvm/` control directory and `user.daxvm.ppt`, driven through the
// low-level FUSE operations over a real file system on a temp pool (no kernel
// mount): routing of every op for control node ids, sizes and snapshots,
// knob writes, refusals, the reserved name.
import t from 'tap';
import fs, { constants } from 'node:fs';
import { ROOT_INO, S_IFDIR, S_IFMT, S_IFREG, type FileSystemApi } from '../src/fs/index.js';
import { errnoNumber } from '../src/fuse/errno.js';
import { fakeIo, N, SET, type Io, type LowLevelOps } from '../src/fuse/lowlevel.js';
import { buildOps } from '../src/fuse/ops.js';
import { MountState } from '../src/fuse/state.js';
import { openPool, tempPool } from './helpers/pool.js';

const E = (name: string) => -errnoNumber(name);

interface A { ino: number; mode: number; size: number; nlink: number }
interface Entry { name: string; ino: number; off: number }

/** The ops, and a client that speaks to them as the kernel would (paths resolved by lookup). */
function client(fsys: FileSystemApi) {
  const listed: Entry[] = [];
  const io: Io = fakeIo((name, off) => { listed.push({ name, ino: io.num[N.INO]!, off }); return true; });
  const state = new MountState(fsys);
  state.io = io;
  const ops = buildOps(state) as Required<LowLevelOps>;
  const attr = (): A => ({ ino: io.num[N.INO]!, mode: io.num[N.MODE]!, size: io.num[N.SIZE]!, nlink: io.num[N.NLINK]! });
  /** Node id of a path, or a negative errno. */
  const ino = (path: string): number => {
    let cur = ROOT_INO;
    for (const part of path.split('/').filter(Boolean)) {
      const r = ops.lookup(cur, part);
      if (r < 0) return r;
      cur = io.num[N.INO]!;
    }
    return cur;
  };
  const parentOf = (path: string): [number, string] => [ino(path.slice(0, path.lastIndexOf('/')) || '/'), path.slice(path.lastIndexOf('/') + 1)];
  const getattr = (path: string, fh = 0): A | number => {
    const i = ino(path);
    if (i < 0) return i;
    const r = ops.getattr(i, fh);
    return r < 0 ? r : attr();
  };
  const readdir = (path: string): Entry[] | number => {
    const i = ino(path);
    let r = ops.opendir(i, 0);
    if (r < 0) return r;
    const fh = io.num[N.FH]!;
    listed.length = 0;
    r = ops.readdir(i, fh, 0, 0);
    ops.releasedir(i, fh);
    return r < 0 ? r : [...listed];
  };
  const open = (path: string, flags: number): number => {
    const i = ino(path);
    const r = ops.open(i, flags);
    return r < 0 ? r : io.num[N.FH]!;
  };
  const read = (path: string, fh: number, size: number, off: number): string | number => {
    const r = ops.read(ino(path), fh, off, size);
    return r < 0 ? r : io.data.subarray(0, r).toString();
  };
  const write = (path: string, fh: number, text: string, off = 0): number => {
    const b = Buffer.from(text);
    b.copy(io.recv, 0);
    return ops.write(ino(path), fh, off, b.length, 0);
  };
  return { ops, io, ino, parentOf, getattr, readdir, open, read, write };
}

t.test('listing, attributes, reading', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const c = client(fsys);
  const { ops } = c;

  const root = c.readdir('/') as Entry[];
  t.same(root.map((e) => e.name), ['.', '..', '.daxvm'], 'the root lists .daxvm');
  const dir = c.getattr('/.daxvm') as A;
  t.equal(dir.mode, S_IFDIR | 0o555);
  t.equal(root[2]!.ino, dir.ino, 'same inode number in readdir and lookup');
  t.ok(dir.ino > 2 ** 31, 'an inode number no file gets');
  t.equal((c.getattr('/') as A).nlink, fsys.getattr(ROOT_INO).nlink + 1, 'root nlink counts it');

  const names = c.readdir('/.daxvm') as Entry[];
  t.same(names.map((e) => e.name), ['.', '..', 'page_tables_on', 'msync', 'zeroout_blocks', 'zombie_max_pages', 'kbytes_occupied', 'pool', 'stats']);
  t.equal(names[1]!.ino, ROOT_INO, '.. is the root');

  for (const e of names.slice(2)) {
    const p = `/.daxvm/${e.name}`;
    const a = c.getattr(p) as A;
    t.equal(a.ino, e.ino, `${e.name}: inode number`);
    t.equal(a.mode & S_IFMT, S_IFREG);
    const fh = c.open(p, constants.O_RDONLY);
    t.equal(c.io.num[N.OPEN_FLAGS], 1, `${e.name}: direct_io`);
    const text = c.read(p, fh, 8192, 0) as string;
    if (e.name !== 'stats') t.equal(Buffer.byteLength(text), a.size, `${e.name}: st_size is the content's length`);
    t.equal(c.read(p, fh, 8192, Buffer.byteLength(text)), '', `${e.name}: then EOF`);
    t.equal(ops.release(e.ino, fh, 0), 0);
  }
  const fh = c.open('/.daxvm/pool', constants.O_RDONLY);
  t.equal(c.read('/.daxvm/pool', fh, 4, 1), fsys.poolPath.slice(1, 5), 'reads at an offset');
  ops.release(c.ino('/.daxvm/pool'), fh, 0);

  t.equal(c.getattr('/.daxvm/nope'), E('ENOENT'));
  t.equal(c.getattr('/.daxvm/stats/x'), E('ENOTDIR'));
  t.equal(c.readdir('/.daxvm/stats'), E('ENOTDIR'));
  t.equal(ops.readlink(c.ino('/.daxvm/stats')), E('EINVAL'));
  t.equal(c.open('/.daxvm', constants.O_RDONLY), E('EISDIR'));
  t.equal(ops.listxattr(c.ino('/.daxvm/stats'), 0), 0);
  t.equal(ops.getxattr(c.ino('/.daxvm/stats'), 'user.x', 0), E('ENODATA'));
});

t.test('knob writes, snapshots, refusals', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const c = client(fsys);
  const { ops } = c;
  const P = '/.daxvm/zombie_max_pages';
  const pino = c.ino(P);

  // As `echo 1234 > knob`: open for writing (O_TRUNC: nothing to do), write.
  const w = c.open(P, constants.O_WRONLY | constants.O_TRUNC);
  t.ok(w > 0, 'open with O_TRUNC');
  const reader = c.open(P, constants.O_RDONLY); // snapshot: "33\n"
  t.equal(ops.setattr(pino, w, SET.SIZE, 0, 0, 0, 0, 0, 0), 0, 'truncate: nothing to do');
  t.equal(c.write(P, w, '1234\n'), 5);
  t.equal(fsys.knobs().zombieMaxPages, 1234, 'applied at write');
  t.equal(c.write(P, w, 'banana\n', 5), E('EINVAL'), 'banana: EINVAL');
  t.equal(c.write(P, w, '0\n'), E('EINVAL'), 'out of range: EINVAL');
  t.equal(fsys.knobs().zombieMaxPages, 1234, 'unchanged');
  t.equal(ops.fsync(pino, w, 0), 0);
  t.equal(ops.release(pino, w, 0), 0);

  t.equal((c.getattr(P, reader) as A).size, 3, "getattr with the handle: the snapshot's size");
  t.equal((c.getattr(P) as A).size, 5, "getattr: the current content's size");
  t.equal(c.read(P, reader, 64, 0), '33\n', 'the reader keeps its snapshot');
  t.equal(ops.release(pino, reader, 0), 0);
  const again = c.open(P, constants.O_RDONLY);
  t.equal(c.read(P, again, 64, 0), '1234\n', 'a new open sees the new value');
  const w2 = c.open(P, constants.O_WRONLY);
  t.equal(c.write(P, w2, '7'), 1, 'printf 7 (no newline)');
  ops.release(pino, w2, 0);
  t.equal(fsys.knobs().zombieMaxPages, 7);
  t.equal((c.getattr(P) as A).size, 5, 'getattr: never less than an open snapshot (fstat comes without the handle)');
  ops.release(pino, again, 0);

  const pt = c.open('/.daxvm/page_tables_on', constants.O_RDWR);
  t.equal(c.write('/.daxvm/page_tables_on', pt, '1\n'), 2);
  t.equal(fsys.knobs().pageTablesOn, 1);
  ops.release(c.ino('/.daxvm/page_tables_on'), pt, 0);

  for (const ro of ['pool', 'stats', 'kbytes_occupied']) {
    const p = `/.daxvm/${ro}`;
    t.equal(c.open(p, constants.O_WRONLY), E('EACCES'), `${ro}: open for writing: EACCES`);
    t.equal(c.open(p, constants.O_RDWR), E('EACCES'), `${ro}: O_RDWR: EACCES`);
    t.equal(ops.setattr(c.ino(p), 0, SET.SIZE, 0, 0, 0, 0, 0, 0), E('EACCES'), `${ro}: truncate: EACCES`);
    // `pool` is readable as the pool file is (its read bits; the temp pool is 0600): see mount-perms.
    const want = ro === 'pool' ? (fs.statSync(fsys.poolPath).mode & 0o444) : 0o444;
    t.equal((c.getattr(p) as A).mode, S_IFREG | want, `${ro}: mode ${want.toString(8)}`);
  }
  t.equal((c.getattr('/.daxvm/msync') as A).mode, S_IFREG | 0o644);

  ops.create(ROOT_INO, 'f', S_IFREG | 0o644, constants.O_RDWR);
  const f = c.io.num[N.INO]!;
  ops.release(f, c.io.num[N.FH]!, 0);
  const D = c.ino('/.daxvm');
  const S = c.ino('/.daxvm/stats');
  const M = c.ino('/.daxvm/msync');
  const refusals: Array<[string, () => number, string]> = [
    ['create in', () => ops.create(D, 'x', S_IFREG | 0o644, 0), 'EPERM'],
    ['mknod in', () => ops.mknod(D, 'x', S_IFREG | 0o644, 0), 'EPERM'],
    ['mkdir in', () => ops.mkdir(D, 'x', 0o755), 'EPERM'],
    ['symlink in', () => ops.symlink(D, 'x', 't'), 'EPERM'],
    ['unlink', () => ops.unlink(D, 'stats'), 'EPERM'],
    ['rmdir', () => ops.rmdir(ROOT_INO, '.daxvm'), 'EPERM'],
    ['rename within', () => ops.rename(D, 'stats', D, 's', 0), 'EPERM'],
    ['rename out', () => ops.rename(D, 'stats', ROOT_INO, 's', 0), 'EPERM'],
    ['rename in', () => ops.rename(ROOT_INO, 'f', D, 'f', 0), 'EPERM'],
    ['rename the dir', () => ops.rename(ROOT_INO, '.daxvm', ROOT_INO, 'c', 0), 'EPERM'],
    ['link of', () => ops.link(S, ROOT_INO, 's'), 'EPERM'],
    ['link into', () => ops.link(f, D, 'f'), 'EPERM'],
    ['chmod', () => ops.setattr(M, 0, SET.MODE, 0o600, 0, 0, 0, 0, 0), 'EPERM'],
    ['chown', () => ops.setattr(M, 0, SET.UID | SET.GID, 0, 1, 1, 0, 0, 0), 'EPERM'],
    ['setxattr', () => ops.setxattr(M, 'user.a', 0, 1, 0), 'EPERM'],
    ['removexattr', () => ops.removexattr(M, 'user.a'), 'EPERM'],
    ['mkdir .daxvm', () => ops.mkdir(ROOT_INO, '.daxvm', 0o755), 'EEXIST'],
    ['create .daxvm', () => ops.create(ROOT_INO, '.daxvm', S_IFREG | 0o644, 0), 'EEXIST'],
    ['symlink .daxvm', () => ops.symlink(ROOT_INO, '.daxvm', 't'), 'EEXIST'],
    ['link to .daxvm', () => ops.link(f, ROOT_INO, '.daxvm'), 'EEXIST'],
    ['rename onto .daxvm', () => ops.rename(ROOT_INO, 'f', ROOT_INO, '.daxvm', 0), 'EEXIST'],
  ];
  for (const [what, op, code] of refusals) t.equal(op(), E(code), `${what}: ${code}`);
  t.equal(ops.setattr(M, 0, SET.ATIME | SET.MTIME, 0, 0, 0, 0, 1000, 2000), 0, 'utimens: accepted, ignored');
  t.same((c.readdir('/') as Entry[]).map((e) => e.name).sort(), ['.', '..', '.daxvm', 'f'], 'nothing created or moved');
});

t.test('a real .daxvm entry in an old pool is shadowed', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  fsys.mkdir(ROOT_INO, '.daxvm', S_IFDIR | 0o755, { uid: 0, gid: 0 });
  const c = client(fsys);
  const root = c.readdir('/') as Entry[];
  t.equal(root.filter((e) => e.name === '.daxvm').length, 1, 'listed once');
  t.equal((c.getattr('/.daxvm') as A).mode, S_IFDIR | 0o555, 'the control directory');
});

t.test('user.daxvm.ppt', async (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const c = client(fsys);
  const { ops, io } = c;
  fsys.setKnob('pageTablesOn', 1);
  ops.create(ROOT_INO, 'f', S_IFREG | 0o644, constants.O_RDWR);
  const ino = io.num[N.INO]!;
  const fh = io.num[N.FH]!;
  io.recv.fill(1, 0, 8192);
  ops.write(ino, fh, 0, 8192, 0);
  ops.release(ino, fh, 0);
  ops.mkdir(ROOT_INO, 'd', 0o755);
  const d = io.num[N.INO]!;
  const n = ops.getxattr(ino, 'user.daxvm.ppt', 4096);
  t.ok(n > 0);
  const v = io.data.subarray(0, n).toString();
  t.equal(v, fsys.pptInfo(ino), 'answers fs.pptInfo');
  t.match(v, new RegExp(`^ino=${ino} gen=\\d+ seq=\\d+ root=[1-9]\\d* level=1 nodes=1 size=8192$`));
  t.equal(ops.getxattr(d, 'user.daxvm.ppt', 0), E('ENODATA'), 'directories: ENODATA');
  t.equal(ops.setxattr(ino, 'user.daxvm.ppt', 0, 1, 0), E('EPERM'));
  t.equal(ops.setxattr(d, 'user.daxvm.ppt', 0, 1, 0), E('EPERM'));
  t.equal(ops.removexattr(ino, 'user.daxvm.ppt'), E('EPERM'));
  io.recv.write('v', 0);
  t.equal(ops.setxattr(ino, 'user.k', 0, 1, 0), 0);
  t.equal(ops.listxattr(ino, 64), 7);
  t.equal(io.data.subarray(0, 7).toString(), 'user.k\0', 'not listed');
});

t.test('no_open: each LOOKUP (a path walk) takes the snapshot that GETATTR and READ without a handle serve', (t) => {
  const fsys = openPool(t, tempPool(t, 64));
  const io = fakeIo();
  const state = new MountState(fsys, { noOpen: true });
  state.io = io;
  const ops = buildOps(state) as Required<LowLevelOps>;
  t.equal(ops.lookup(ROOT_INO, '.daxvm'), 0);
  const dir = io.num[N.INO]!;
  const look = (name: string) => {
    t.equal(ops.lookup(dir, name), 0);
    t.equal(io.num[N.ENTRY_TIMEOUT], 0, 'entry timeout 0: every open walks the path again');
    return { ino: io.num[N.INO]!, size: io.num[N.SIZE]!, mtime: io.num[N.MTIME]! };
  };
  const read = (ino: number): string => {
    const r = ops.read(ino, 0, 0, 65536);
    t.ok(r >= 0);
    return io.data.subarray(0, r).toString();
  };
  const a = look('stats');
  const first = read(a.ino);
  t.equal(Buffer.byteLength(first), a.size, 'READ serves what LOOKUP reported');
  for (let i = 0; i < 3; i++) {
    t.equal(ops.getattr(a.ino, 0), 0);
    t.equal(io.num[N.SIZE], a.size, 'GETATTR between two lookups: the same size...');
    t.equal(io.num[N.MTIME], a.mtime, '...and mtime (the kernel keeps the pages it read)');
    t.equal(read(a.ino), first, 'and READ the same bytes, though requests were counted since');
  }
  const b = look('stats');
  t.not(b.mtime, a.mtime, 'the next LOOKUP: a new mtime (the kernel drops its cached pages)');
  t.equal(Buffer.byteLength(read(b.ino)), b.size, 'and the new snapshot');

  const k = look('msync');
  t.equal(read(k.ino), '1\n');
  const v = Buffer.from('0\n');
  v.copy(io.recv, 0);
  t.equal(ops.write(k.ino, 0, 0, v.length, 0, constants.O_WRONLY), v.length, 'a knob write without a handle');
  t.equal(ops.getattr(k.ino, 0), 0);
  t.not(io.num[N.MTIME], k.mtime, 'a new mtime at once');
  t.equal(read(k.ino), '0\n', 'the new value');
  t.end();
});
