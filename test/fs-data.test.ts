/** The fs layer on a temp pool: data, holes, truncate, alignment, ENOSPC. */
import t from 'tap';
import { FsError, ROOT_INO, fsck } from '../src/fs/index.js';
import { openPool, pattern, readAll, ROOT, tempPool } from './helpers/pool.js';

const MiB = 1024 * 1024;

t.test('write and read back across extents, at odd offsets', async (t) => {
  const fsys = openPool(t, tempPool(t));
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  const data = pattern(5 * MiB + 777, 1);
  for (let off = 0; off < data.length; off += 131072) fsys.write(f.ino, off, data.subarray(off, off + 131072));
  t.ok(readAll(fsys, f.ino).equals(data));
  fsys.write(f.ino, 4095, Buffer.from('XY'));
  const back = Buffer.alloc(4);
  fsys.read(f.ino, 4094, back);
  t.same([...back], [data[4094], 0x58, 0x59, data[4097]]);
  t.equal(fsys.read(f.ino, data.length + 10, Buffer.alloc(10)), 0, 'reads past EOF return 0');
});

t.test('holes read as zeros; truncate down then up reads zeros', async (t) => {
  const fsys = openPool(t, tempPool(t));
  const f = fsys.create(ROOT_INO, 'sparse', 0o644, ROOT);
  fsys.write(f.ino, 10 * MiB, Buffer.from('end'));
  t.equal(fsys.getattr(f.ino).size, 10 * MiB + 3);
  t.equal(fsys.getattr(f.ino).blocks, 8, 'one block allocated');
  const mid = Buffer.alloc(8192, 1);
  fsys.read(f.ino, 4 * MiB, mid);
  t.ok(mid.every((b) => b === 0), 'hole reads zeros');
  const g = fsys.create(ROOT_INO, 'g', 0o644, ROOT);
  fsys.write(g.ino, 0, Buffer.alloc(10000, 0xaa));
  fsys.truncate(g.ino, 5000);
  fsys.truncate(g.ino, 9000);
  const tail = Buffer.alloc(4000);
  fsys.read(g.ino, 5000, tail);
  t.ok(tail.every((b) => b === 0), 'bytes past a shrink read as zeros after growing again');
  fsys.truncate(g.ino, 2000);
  fsys.write(g.ino, 6000, Buffer.from('z'));
  const gap = Buffer.alloc(4000);
  fsys.read(g.ino, 2000, gap);
  t.ok(gap.every((b) => b === 0), 'a write past EOF leaves zeros in the gap');
});

t.test("new blocks never show another file's old bytes", async (t) => {
  const pool = tempPool(t, 32);
  const fsys = openPool(t, pool);
  const old = fsys.create(ROOT_INO, 'old', 0o644, ROOT);
  const secret = Buffer.alloc(4 * MiB, 0x5a);
  fsys.write(old.ino, 0, secret);
  fsys.unlink(ROOT_INO, 'old');
  fsys.sync();
  // Reuse the space with unaligned, partial writes and sparse extension.
  for (let i = 0; i < 40; i++) {
    const f = fsys.create(ROOT_INO, `n${i}`, 0o644, ROOT);
    fsys.write(f.ino, 100 + i * 37, Buffer.from('data'));
    fsys.truncate(f.ino, 50000 + i);
    const all = readAll(fsys, f.ino);
    t.notOk(all.includes(0x5a), `file n${i} shows none of the old bytes`);
  }
});

t.test('files of 2 MiB or more sit on 2 MiB-aligned pool offsets', async (t) => {
  const fsys = openPool(t, tempPool(t, 256));
  // Small files first, so the big one cannot start at an aligned spot by luck.
  for (let i = 0; i < 5; i++) fsys.write(fsys.create(ROOT_INO, `s${i}`, 0o644, ROOT).ino, 0, Buffer.alloc(5000, i));
  const big = fsys.create(ROOT_INO, 'big', 0o644, ROOT);
  const data = pattern(64 * MiB, 7);
  for (let off = 0; off < data.length; off += 131072) fsys.write(big.ino, off, data.subarray(off, off + 131072));
  const items = fsys.core.inode(big.ino).extents.items;
  t.ok(items.length >= 1);
  t.ok(items.every((e) => (e.physical - e.logical) % 512 === 0), `every extent aligned: ${JSON.stringify(items)}`);
  t.equal(items.length, 1, 'and contiguous');
  t.ok(readAll(fsys, big.ino).equals(data), 'data intact after the move to an aligned region');
  const small = fsys.core.inode(fsys.resolve('/s1')).extents.items;
  t.equal(small.length, 1);
});

t.test('ENOSPC leaves the file system whole, and space returns', async (t) => {
  const pool = tempPool(t, 24);
  const fsys = openPool(t, pool);
  const f = fsys.create(ROOT_INO, 'fill', 0o644, ROOT);
  const chunk = Buffer.alloc(MiB, 1);
  let written = 0;
  let error = '';
  for (;;) {
    try {
      const n = fsys.write(f.ino, written, chunk);
      written += n;
      if (n < chunk.length) continue;
    } catch (err) {
      error = (err as FsError).code;
      break;
    }
  }
  t.equal(error, 'ENOSPC');
  t.ok(written > 10 * MiB, `wrote ${written} bytes first`);
  t.equal(fsys.getattr(f.ino).size, written, 'size matches what was written');
  t.ok(fsys.statfs().bavail === 0, 'no space available');
  t.ok(fsys.mkdir(ROOT_INO, 'still-works', 0o755, ROOT).ino > 0, 'metadata still fits (reserve)');
  fsys.unlink(ROOT_INO, 'fill');
  t.ok(fsys.statfs().bavail * 4096 > 10 * MiB, 'space returns after delete');
  const g = fsys.create(ROOT_INO, 'again', 0o644, ROOT);
  t.equal(fsys.write(g.ino, 0, Buffer.alloc(8 * MiB, 2)), 8 * MiB);
  fsys.close();
  t.equal(fsck(pool).exitCode, 0, 'fsck clean');
});

t.test('unlink of an open file: data lives until the last release', async (t) => {
  const fsys = openPool(t, tempPool(t));
  const f = fsys.create(ROOT_INO, 'open', 0o644, ROOT);
  fsys.open(f.ino);
  fsys.write(f.ino, 0, Buffer.alloc(MiB, 3));
  const free0 = fsys.statfs().bfree;
  fsys.unlink(ROOT_INO, 'open');
  t.equal(fsys.getattr(f.ino).nlink, 0);
  t.equal(fsys.statfs().bfree, free0, 'blocks still held');
  t.equal(readAll(fsys, f.ino)[12345], 3, 'still readable');
  fsys.release(f.ino);
  t.ok(fsys.statfs().bfree >= free0 + 256, 'freed at last release');
  t.throws(() => fsys.getattr(f.ino));
});

t.test('files larger than 4 GiB (sparse)', async (t) => {
  const fsys = openPool(t, tempPool(t));
  const f = fsys.create(ROOT_INO, 'huge', 0o644, ROOT);
  const at = 5 * 1024 * MiB + 12345;
  fsys.write(f.ino, at, Buffer.from('far away'));
  t.equal(fsys.getattr(f.ino).size, at + 8);
  const back = Buffer.alloc(8);
  fsys.read(f.ino, at, back);
  t.equal(back.toString(), 'far away');
  t.throws(() => fsys.truncate(f.ino, 17 * 1024 * 1024 * MiB), { code: 'EFBIG' }, 'past 16 TiB: EFBIG');
  t.throws(() => fsys.write(f.ino, 16 * 1024 * 1024 * MiB, Buffer.from('x')), { code: 'EFBIG' });
});
