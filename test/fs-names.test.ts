/** The fs layer on a temp pool: names and the errno ext4 gives for each mistake. */
import t from 'tap';
import { FsError, ROOT_INO, S_IFDIR, S_IFLNK, S_IFREG, utf8Name } from '../src/fs/index.js';
import { openPool, ROOT, tempPool } from './helpers/pool.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof FsError ? err.code : String(err);
  }
};

t.test('create, lookup, readdir, link counts', async (t) => {
  const fsys = openPool(t, tempPool(t));
  const dir = fsys.mkdir(ROOT_INO, 'd', 0o755, ROOT);
  t.equal(dir.mode, S_IFDIR | 0o755);
  t.equal(fsys.getattr(ROOT_INO).nlink, 3, 'root gains a link per subdirectory');
  const f = fsys.create(dir.ino, 'f', 0o640, ROOT);
  t.equal(f.mode, S_IFREG | 0o640);
  t.equal(fsys.lookup(dir.ino, 'f'), f.ino);
  t.equal(fsys.resolve('/d/f'), f.ino);
  fsys.link(f.ino, ROOT_INO, 'hard');
  t.equal(fsys.getattr(f.ino).nlink, 2);
  const s = fsys.symlink(ROOT_INO, 's', 'd/f', ROOT);
  t.equal(s.mode & 0o170000, S_IFLNK);
  t.equal(fsys.readlink(s.ino), 'd/f');
  const long = 'x/'.repeat(1000) + 'y';
  t.equal(fsys.readlink(fsys.symlink(ROOT_INO, 'long', long, ROOT).ino), long, 'a long target lives in a block');
  t.same(fsys.readdir(ROOT_INO).map((e) => e.name).sort(), ['.', '..', 'd', 'hard', 'long', 's']);
  fsys.unlink(ROOT_INO, 'hard');
  t.equal(fsys.getattr(f.ino).nlink, 1);
});

t.test('errno values as ext4 gives them', async (t) => {
  const fsys = openPool(t, tempPool(t));
  const d = fsys.mkdir(ROOT_INO, 'd', 0o755, ROOT);
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.create(d.ino, 'inside', 0o644, ROOT);
  t.equal(code(() => fsys.lookup(ROOT_INO, 'nope')), 'ENOENT');
  t.equal(code(() => fsys.create(ROOT_INO, 'f', 0o644, ROOT)), 'EEXIST');
  t.equal(code(() => fsys.mkdir(ROOT_INO, 'd', 0o755, ROOT)), 'EEXIST');
  t.equal(code(() => fsys.rmdir(ROOT_INO, 'd')), 'ENOTEMPTY');
  t.equal(code(() => fsys.unlink(ROOT_INO, 'd')), 'EISDIR');
  t.equal(code(() => fsys.rmdir(ROOT_INO, 'f')), 'ENOTDIR');
  t.equal(code(() => fsys.create(f.ino, 'x', 0o644, ROOT)), 'ENOTDIR');
  t.equal(code(() => fsys.create(ROOT_INO, 'n'.repeat(256), 0o644, ROOT)), 'ENAMETOOLONG');
  t.equal(code(() => fsys.create(ROOT_INO, 'n'.repeat(255), 0o644, ROOT)), 'no error', '255 bytes is fine');
  t.equal(code(() => fsys.create(ROOT_INO, utf8Name('é'.repeat(128)), 0o644, ROOT)), 'ENAMETOOLONG', 'the limit is in bytes');
  t.equal(code(() => fsys.create(ROOT_INO, '€', 0o644, ROOT)), 'EINVAL', 'names are byte strings: U+20AC is not a byte');
  t.equal(code(() => fsys.link(d.ino, ROOT_INO, 'dl')), 'EPERM');
  t.equal(code(() => fsys.rename(ROOT_INO, 'd', d.ino, 'sub')), 'EINVAL', 'a directory cannot move into itself');
  t.equal(code(() => fsys.rename(ROOT_INO, 'f', ROOT_INO, 'd')), 'EISDIR');
  fsys.mkdir(ROOT_INO, 'e', 0o755, ROOT);
  t.equal(code(() => fsys.rename(ROOT_INO, 'e', ROOT_INO, 'f')), 'ENOTDIR');
  t.equal(code(() => fsys.rename(ROOT_INO, 'e', ROOT_INO, 'd')), 'ENOTEMPTY');
  t.equal(code(() => fsys.symlink(ROOT_INO, 'empty', '', ROOT)), 'ENOENT');
  t.equal(code(() => fsys.getxattr(f.ino, 'user.none')), 'ENODATA');
  t.equal(code(() => fsys.setxattr(f.ino, 'bogus.x', Buffer.from('v'), 0)), 'EOPNOTSUPP');
  t.equal(code(() => fsys.setxattr(f.ino, 'user.big', Buffer.alloc(5000), 0)), 'ENOSPC');
  t.equal(code(() => fsys.write(d.ino, 0, Buffer.from('x'))), 'EISDIR');
});

t.test('names are raw bytes: UTF-8 or not, kept and counted as given', async (t) => {
  const pool = tempPool(t);
  let fsys = openPool(t, pool);
  // A lone continuation byte, U+FFFD's own bytes, and an overlong "/" are three names, not one.
  const names = ['\x80', utf8Name('\ufffd'), '\xc0\xaf', '\xff'.repeat(255), utf8Name('é'.repeat(127)) + 'a'];
  for (const n of names) fsys.create(ROOT_INO, n, 0o644, ROOT);
  const target = '\xff\xfe'.repeat(2000) + '\x80';
  fsys.symlink(ROOT_INO, 'l', target, ROOT);
  const f = fsys.lookup(ROOT_INO, '\x80');
  fsys.setxattr(f, 'user.\xff\x80', Buffer.from('v'), 0);
  t.equal(code(() => fsys.create(ROOT_INO, '\xff'.repeat(256), 0o644, ROOT)), 'ENAMETOOLONG', '256 bytes');
  t.equal(code(() => fsys.symlink(ROOT_INO, 'l2', '\u20ac', ROOT)), 'EINVAL', 'a target is a byte string too');
  t.equal(code(() => fsys.setxattr(f, 'user.\u20ac', Buffer.from('v'), 0)), 'EINVAL', 'and an attribute name');
  fsys.close();
  fsys = openPool(t, pool);
  t.same(fsys.readdir(ROOT_INO).map((e) => e.name).slice(2).sort(), [...names, 'l'].sort(), 'every name back, byte for byte');
  t.equal(fsys.readlink(fsys.lookup(ROOT_INO, 'l')), target, 'a 4001-byte target of raw bytes');
  t.same(fsys.listxattr(fsys.lookup(ROOT_INO, '\x80')), ['user.\xff\x80']);
});

t.test('rename: over files, over empty directories, across directories', async (t) => {
  const fsys = openPool(t, tempPool(t));
  const a = fsys.mkdir(ROOT_INO, 'a', 0o755, ROOT);
  const b = fsys.mkdir(ROOT_INO, 'b', 0o755, ROOT);
  const f1 = fsys.create(a.ino, 'f1', 0o644, ROOT);
  const f2 = fsys.create(b.ino, 'f2', 0o644, ROOT);
  fsys.rename(a.ino, 'f1', b.ino, 'f2');
  t.equal(fsys.lookup(b.ino, 'f2'), f1.ino, 'replaced the target');
  t.throws(() => fsys.getattr(f2.ino), 'the replaced file is gone');
  const sub = fsys.mkdir(a.ino, 'sub', 0o755, ROOT);
  fsys.mkdir(b.ino, 'empty', 0o755, ROOT);
  const before = { a: fsys.getattr(a.ino).nlink, b: fsys.getattr(b.ino).nlink };
  fsys.rename(a.ino, 'sub', b.ino, 'empty');
  t.equal(fsys.lookup(b.ino, 'empty'), sub.ino);
  t.equal(fsys.getattr(a.ino).nlink, before.a - 1, 'source parent lost a subdirectory');
  t.equal(fsys.getattr(b.ino).nlink, before.b, 'target parent: one subdirectory replaced by another');
  t.equal(fsys.lookup(sub.ino, '..'), b.ino, '.. follows the move');
  const f = fsys.create(ROOT_INO, 'same', 0o644, ROOT);
  fsys.link(f.ino, ROOT_INO, 'same2');
  fsys.rename(ROOT_INO, 'same', ROOT_INO, 'same2');
  t.equal(fsys.getattr(f.ino).nlink, 2, 'renaming onto another name of the same file does nothing');
});

t.test('a directory of 20 000 entries: lookups and deletes stay cheap', async (t) => {
  const fsys = openPool(t, tempPool(t, 512));
  const d = fsys.mkdir(ROOT_INO, 'big', 0o755, ROOT);
  for (let i = 0; i < 20000; i++) fsys.create(d.ino, `file-${i}`, 0o644, ROOT);
  t.equal(fsys.readdir(d.ino).length, 20002);
  t.ok(fsys.lookup(d.ino, 'file-12345') > 0);
  for (let i = 0; i < 20000; i += 2) fsys.unlink(d.ino, `file-${i}`);
  t.equal(fsys.readdir(d.ino).length, 10002);
  for (let i = 0; i < 5000; i++) fsys.create(d.ino, `again-${i}`, 0o644, ROOT);
  const blocksBefore = fsys.getattr(d.ino).size;
  t.equal(fsys.readdir(d.ino).length, 15002);
  t.equal(fsys.getattr(d.ino).size, blocksBefore, 'freed slots are reused');
});
