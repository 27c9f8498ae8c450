/** fallocate at the fs layer: preallocation, KEEP_SIZE, punch, zero range, errno, all-or-nothing ENOSPC, fsck. */
import t from 'tap';
import {
  FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE,
  FsError, MAX_FILE_SIZE, ROOT_INO, S_IFIFO, fsck,
} from '../src/fs/index.js';
import { openPool, pattern, readAll, ROOT, tempPool } from './helpers/pool.js';

const MiB = 1024 * 1024;
const KEEP = FALLOC_FL_KEEP_SIZE;

function code(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof FsError ? err.code : String(err);
  }
}

function bytesAt(fsys: ReturnType<typeof openPool>, ino: number, at: number, n: number): Buffer {
  const b = Buffer.alloc(n, 0xee);
  return b.subarray(0, fsys.read(ino, at, b));
}

t.test('mode 0: zeroed, aligned blocks behind every page, the size extended, page tables in the same change', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  fsys.setKnob('pageTablesOn', 1);
  // A small file first, so the big one cannot be aligned by luck.
  fsys.write(fsys.create(ROOT_INO, 'small', 0o644, ROOT).ino, 0, Buffer.alloc(5000, 1));
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  const attr = fsys.fallocate(f.ino, 0, 0, 8 * MiB);
  t.equal(attr.size, 8 * MiB, 'size extended');
  t.equal(attr.blocks, 8 * MiB / 512, 'st_blocks: all 8 MiB allocated');
  const items = fsys.core.inode(f.ino).extents.items;
  t.ok(items.every((e) => (e.physical - e.logical) % 512 === 0), `every extent 2 MiB-aligned: ${JSON.stringify(items)}`);
  t.ok(readAll(fsys, f.ino).equals(Buffer.alloc(8 * MiB)), 'reads zeros');
  t.equal(fsys.stats().hugePmdEntries, 4, 'the table maps the file with 4 huge PMD entries');
  // Over data: nothing changes but the size.
  const g = fsys.create(ROOT_INO, 'g', 0o644, ROOT);
  const data = pattern(10000, 3);
  fsys.write(g.ino, 0, data);
  fsys.truncate(g.ino, 6000); // bytes 6000..10000 stay in the block, stale
  fsys.fallocate(g.ino, 0, 4096, 20000);
  const back = readAll(fsys, g.ino);
  t.equal(back.length, 24096);
  t.ok(back.subarray(0, 6000).equals(data.subarray(0, 6000)), 'the data in range is kept');
  t.ok(back.subarray(6000).equals(Buffer.alloc(24096 - 6000)), 'the stale bytes past the old end read as zeros');
  fsys.close();
  const ck = fsck(pool);
  t.equal(ck.exitCode, 0, `fsck clean: ${JSON.stringify(ck.problems)}`);
  const again = openPool(t, pool);
  t.equal(again.getattr(again.resolve('/f')).size, 8 * MiB, 'the size survives a remount');
  t.ok(readAll(again, again.resolve('/g')).subarray(0, 6000).equals(data.subarray(0, 6000)), 'and the data');
});

t.test('KEEP_SIZE: blocks past the end, zeros when the file grows over them, freed by truncate; fsck accepts them', async (t) => {
  const pool = tempPool(t, 64);
  let fsys = openPool(t, pool);
  fsys.setKnob('pageTablesOn', 1);
  let f = fsys.create(ROOT_INO, 'k', 0o644, ROOT);
  fsys.write(f.ino, 0, Buffer.from('head'));
  const attr = fsys.fallocate(f.ino, KEEP, 0, 6 * MiB); // past the reach of a size of 4 bytes' table (2 MiB)
  t.equal(attr.size, 4, 'the size stays');
  t.equal(attr.blocks, 6 * MiB / 512, 'st_blocks counts the preallocated blocks');
  let e = fsys.create(ROOT_INO, 'empty', 0o644, ROOT);
  t.equal(fsys.fallocate(e.ino, KEEP, 0, MiB).size, 0, 'an empty file keeps size 0 (and has no table)');
  fsys.close();
  let ck = fsck(pool);
  t.equal(ck.exitCode, 0, `fsck clean with blocks past the end: ${JSON.stringify(ck.problems)}`);
  fsys = openPool(t, pool);
  f = fsys.getattr(fsys.resolve('/k'));
  e = fsys.getattr(fsys.resolve('/empty'));
  t.equal(f.blocks, 6 * MiB / 512, 'after a remount too');
  fsys.truncate(f.ino, 3 * MiB);
  const back = readAll(fsys, f.ino);
  t.equal(back.subarray(0, 4).toString(), 'head');
  t.ok(back.subarray(4).equals(Buffer.alloc(3 * MiB - 4)), 'growing over them reads zeros');
  t.equal(fsys.getattr(f.ino).blocks, 6 * MiB / 512, 'the blocks past the new end stay');
  fsys.truncate(f.ino, 3 * MiB); // the same size: ext4 drops what lies past the end
  t.equal(fsys.getattr(f.ino).blocks, 3 * MiB / 512, 'a truncate to the size frees the blocks past it');
  fsys.truncate(e.ino, 0);
  t.equal(fsys.getattr(e.ino).blocks, 0, 'truncate to 0 frees them all');
  fsys.close();
  ck = fsck(pool);
  t.equal(ck.exitCode, 0, `fsck clean after: ${JSON.stringify(ck.problems)}`);
});

for (const zeroout of [1, 0]) {
  t.test(`zeroout_blocks ${zeroout}: preallocated blocks never show old bytes; zeroing counted as for writes`, async (t) => {
    const fsys = openPool(t, tempPool(t, 64));
    fsys.setKnob('zerooutBlocks', zeroout);
    for (let i = 0; i < 10; i++) fsys.write(fsys.create(ROOT_INO, `old${i}`, 0o644, ROOT).ino, 0, Buffer.alloc(4 * MiB, 0xa5));
    for (let i = 0; i < 10; i++) fsys.unlink(ROOT_INO, `old${i}`);
    fsys.sync();
    if (zeroout === 0) fsys.core.zeroer.drain();
    const before = fsys.stats().blocksZeroedSync!;
    let leaks = 0;
    for (let i = 0; i < 12; i++) {
      const f = fsys.create(ROOT_INO, `new${i}`, 0o644, ROOT);
      fsys.fallocate(f.ino, 0, (i * 5003) % 9000, MiB + i * 40000);
      if (readAll(fsys, f.ino).includes(0xa5)) leaks++;
    }
    t.equal(leaks, 0, 'no file shows an old byte');
    const sync = fsys.stats().blocksZeroedSync! - before;
    if (zeroout === 0) t.equal(sync, 0, 'pre-zeroed blocks: nothing zeroed on the request path');
    else t.ok(sync >= 12 * 256, `zeroed synchronously, and counted (${sync} blocks)`);
  });
}

t.test('PUNCH_HOLE|KEEP_SIZE frees whole blocks and zeroes partial ones; ZERO_RANGE zeroes and allocates', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  fsys.setKnob('pageTablesOn', 1);
  const f = fsys.create(ROOT_INO, 'p', 0o644, ROOT);
  const data = pattern(5 * 4096, 9);
  fsys.write(f.ino, 0, data);
  // [100, 100 + 4096*2 + 50): a partial block, one whole block (1), a partial block.
  const punched = fsys.fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | KEEP, 100, 2 * 4096 + 50);
  t.equal(punched.size, data.length, 'the size stays');
  t.equal(punched.blocks, 4 * 8, 'one whole block freed');
  const want = Buffer.from(data);
  want.fill(0, 100, 100 + 2 * 4096 + 50);
  t.ok(readAll(fsys, f.ino).equals(want), 'the range reads zeros, the rest as it was');
  t.equal(fsys.fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | KEEP, 10, 20).blocks, 4 * 8, 'within one block: nothing freed');
  want.fill(0, 10, 30);
  t.ok(readAll(fsys, f.ino).equals(want), 'and those bytes zeroed');
  fsys.fallocate(f.ino, FALLOC_FL_PUNCH_HOLE | KEEP, 0, 100 * MiB);
  t.equal(fsys.getattr(f.ino).blocks, 0, 'punching everything frees everything');
  t.equal(fsys.getattr(f.ino).size, data.length);

  const z = fsys.create(ROOT_INO, 'z', 0o644, ROOT);
  fsys.write(z.ino, 0, data.subarray(0, 8192));
  fsys.write(z.ino, 5 * 4096, Buffer.from('tail'));
  const zr = fsys.fallocate(z.ino, FALLOC_FL_ZERO_RANGE, 1000, 8 * 4096);
  t.equal(zr.size, 1000 + 8 * 4096, 'ZERO_RANGE extends the size');
  t.equal(zr.blocks, 9 * 8, 'and allocates the holes in range');
  const zb = readAll(fsys, z.ino);
  t.ok(zb.subarray(0, 1000).equals(data.subarray(0, 1000)), 'bytes before the range kept');
  t.ok(zb.subarray(1000).equals(Buffer.alloc(zb.length - 1000)), 'the range reads zeros (old data too)');
  t.equal(fsys.fallocate(z.ino, FALLOC_FL_ZERO_RANGE | KEEP, 0, 64 * 4096).size, zr.size, 'with KEEP_SIZE the size stays');
  fsys.close();
  const ck = fsck(pool);
  t.equal(ck.exitCode, 0, `fsck clean: ${JSON.stringify(ck.problems)}`);
});

t.test('errno as ext4; ENOSPC allocates nothing', async (t) => {
  const fsys = openPool(t, tempPool(t, 32));
  const f = fsys.create(ROOT_INO, 'e', 0o644, ROOT);
  t.equal(code(() => fsys.fallocate(f.ino, 0, 0, 0)), 'EINVAL', 'length 0');
  t.equal(code(() => fsys.fallocate(f.ino, 0, -1, 10)), 'EINVAL', 'offset < 0');
  t.equal(code(() => fsys.fallocate(f.ino, FALLOC_FL_PUNCH_HOLE, 0, 10)), 'EOPNOTSUPP', 'PUNCH_HOLE without KEEP_SIZE');
  t.equal(code(() => fsys.fallocate(f.ino, FALLOC_FL_COLLAPSE_RANGE, 0, 4096)), 'EOPNOTSUPP', 'COLLAPSE_RANGE');
  t.equal(code(() => fsys.fallocate(f.ino, FALLOC_FL_INSERT_RANGE, 0, 4096)), 'EOPNOTSUPP', 'INSERT_RANGE');
  t.equal(code(() => fsys.fallocate(f.ino, 0, MAX_FILE_SIZE, 1)), 'EFBIG', 'past the largest file');
  t.equal(code(() => fsys.fallocate(f.ino, KEEP, 2 ** 62, 2 ** 62)), 'EFBIG', 'near 2^63');
  t.equal(code(() => fsys.fallocate(ROOT_INO, 0, 0, 4096)), 'EISDIR', 'a directory');
  const fifo = fsys.create(ROOT_INO, 'fifo', S_IFIFO | 0o644, ROOT);
  t.equal(code(() => fsys.fallocate(fifo.ino, 0, 0, 4096)), 'ENODEV', 'a fifo');

  fsys.write(f.ino, 0, Buffer.from('keep me'));
  fsys.sync();
  const free = fsys.statfs().bfree;
  const extents = JSON.stringify(fsys.core.inode(f.ino).extents.items);
  t.equal(code(() => fsys.fallocate(f.ino, 0, 4096, 64 * MiB)), 'ENOSPC', 'more than the pool holds');
  t.equal(code(() => fsys.fallocate(f.ino, KEEP, 3 * MiB, 40 * MiB)), 'ENOSPC', 'past 2 MiB too (no move into an aligned region first)');
  t.equal(fsys.statfs().bfree, free, 'free space as before');
  t.equal(JSON.stringify(fsys.core.inode(f.ino).extents.items), extents, 'the extents as before');
  t.equal(fsys.getattr(f.ino).size, 7, 'the size as before');
  t.equal(fsys.fallocate(f.ino, 0, 0, 8 * MiB).size, 8 * MiB, 'what fits is allocated');
  t.equal(bytesAt(fsys, f.ino, 0, 7).toString(), 'keep me');
});
