/**
 * Leases at the fs layer (BlockLeases in src/fs/api.ts): an open handle is
 * not a lease (blocks a file drops are reusable once the transaction is
 * durable, as ext4's), a lease is (covered blocks are held back until it
 * goes, a leased file is never moved), and a pool opened with live leases
 * adopts them before it frees anything.
 */
import t from 'tap';
import type * as Tap from 'tap';
import { ROOT_INO, type BlockLeases, type BlockRun, type FileSystem } from '../src/fs/index.js';
import { openPool, pattern, readAll, ROOT, tempPool } from './helpers/pool.js';

const MiB = 1024 * 1024;

/** A lease table in a test's hands: ranges added and removed at will. */
class FakeLeases implements BlockLeases {
  ranges: BlockRun[] = [];
  scans = 0;
  live(): BlockRun[] {
    this.scans++;
    return [...this.ranges].sort((a, b) => a.start - b.start);
  }

  vouch(runs: BlockRun[]): boolean {
    return !runs.some((v) => this.ranges.some((r) => r.start < v.start + v.count && v.start < r.start + r.count));
  }

  unvouch(): void {}
}

function physical(fsys: FileSystem, ino: number): BlockRun[] {
  return fsys.core.inode(ino).extents.items.map((e) => ({ start: e.physical, count: e.count }));
}

function growPast2MiB(t: Tap.Test, handles: number, lease: boolean): { before: number[]; after: number[]; aligned: boolean; intact: boolean } {
  const leases = new FakeLeases();
  const fsys = openPool(t, tempPool(t, 128), { leases });
  // A small file first, so the next one starts unaligned.
  fsys.write(fsys.create(ROOT_INO, 's', 0o644, ROOT).ino, 0, Buffer.alloc(5000, 1));
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  for (let i = 0; i < handles; i++) fsys.open(f.ino);
  const data = pattern(4 * MiB, 3);
  fsys.write(f.ino, 0, data.subarray(0, 64 * 1024));
  fsys.sync();
  if (lease) leases.ranges = physical(fsys, f.ino);
  const before = fsys.core.inode(f.ino).extents.items.map((e) => e.physical);
  for (let off = 64 * 1024; off < data.length; off += 256 * 1024) fsys.write(f.ino, off, data.subarray(off, off + 256 * 1024));
  fsys.sync();
  const items = fsys.core.inode(f.ino).extents.items;
  const intact = readAll(fsys, f.ino).equals(data);
  for (let i = 0; i < handles; i++) fsys.release(f.ino);
  return { before, after: items.map((e) => e.physical), aligned: items.every((e) => (e.physical - e.logical) % 512 === 0), intact };
}

t.test('the writer alone: the first 2 MiB move once to an aligned region', async (t) => {
  const r = growPast2MiB(t, 1, false);
  t.ok(r.aligned, `aligned: ${JSON.stringify(r.after)}`);
  t.not(r.after[0], r.before[0], 'the first blocks moved');
  t.ok(r.intact, 'data intact');
});

t.test('a second handle open is not a lease: the file still moves', async (t) => {
  const r = growPast2MiB(t, 2, false);
  t.ok(r.aligned, `aligned: ${JSON.stringify(r.after)}`);
  t.ok(r.intact, 'data intact');
});

t.test('a lease on the first blocks: nothing moves', async (t) => {
  const r = growPast2MiB(t, 1, true);
  t.equal(r.after[0], r.before[0], `the first blocks stay where a mapping may see them (${JSON.stringify(r.after)})`);
  t.notOk(r.aligned, 'so the file stays unaligned');
  t.ok(r.intact, 'data intact');
});

// An open handle is not a lease: what truncate and punch free comes back at their commit, the file still open.
for (const [what, free] of [
  ['truncate', (fsys: FileSystem, ino: number) => fsys.truncate(ino, 0)],
  ['punch', (fsys: FileSystem, ino: number) => fsys.fallocate(ino, 0x02 | 0x01, 0, 8 * MiB)], // PUNCH_HOLE | KEEP_SIZE
] as const) {
  t.test(`${what} of an open file: the blocks come back at the commit, not at the close`, async (t) => {
    const fsys = openPool(t, tempPool(t, 64), { leases: new FakeLeases() });
    const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
    fsys.open(f.ino);
    const free0 = fsys.statfs().bfree;
    fsys.write(f.ino, 0, pattern(8 * MiB, 1));
    fsys.sync();
    t.ok(fsys.statfs().bfree < free0 - 2000, 'the write took blocks');
    free(fsys, f.ino);
    fsys.sync();
    t.equal(fsys.core.alloc.leaseHeld, 0, 'nothing held: no lease');
    t.ok(fsys.core.alloc.freeNow >= free0 - 16, `free again while the file is open (${fsys.core.alloc.freeNow} of ${free0})`);
    t.equal(fsys.getattr(f.ino).size, what === 'punch' ? 8 * MiB : 0, 'the size: kept by a punch, 0 after the truncate');
    fsys.release(f.ino);
  });
}

t.test('blocks a lease covers are held back after a truncate, and let go when it goes', async (t) => {
  const leases = new FakeLeases();
  const fsys = openPool(t, tempPool(t, 64), { leases });
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  const data = pattern(4 * MiB, 2);
  fsys.write(f.ino, 0, data);
  fsys.sync();
  const blocks = physical(fsys, f.ino);
  leases.ranges = blocks; // a mapping of the whole file
  fsys.truncate(f.ino, 0);
  fsys.sync();
  t.equal(fsys.core.alloc.leaseHeld, 1024, 'the 1024 leased blocks are held');
  // Fill the pool: nothing may land on the leased blocks.
  const g = fsys.create(ROOT_INO, 'g', 0o644, ROOT);
  let off = 0;
  for (;;) {
    try {
      off += fsys.write(g.ino, off, Buffer.alloc(MiB, 0xee));
    } catch (err) {
      t.equal((err as { code?: string }).code, 'ENOSPC', 'filled up');
      break;
    }
  }
  const taken = physical(fsys, g.ino);
  const overlap = taken.some((r) => blocks.some((b) => b.start < r.start + r.count && r.start < b.start + b.count));
  t.notOk(overlap, 'no leased block was handed out');
  const pool = fsys.core.pool;
  const still = Buffer.concat(blocks.map((b) => pool.read(b.start * 4096, b.count * 4096)));
  t.ok(still.equals(data), 'the leased bytes are unchanged');
  leases.ranges = [];
  fsys.sync(); // the next commit looks again
  fsys.write(g.ino, off, Buffer.alloc(MiB, 0xdd));
  t.equal(fsys.core.alloc.leaseHeld, 0, 'let go once the lease is gone');
});

t.test('a pool opened with live leases adopts them before anything is freed', async (t) => {
  const pool = tempPool(t, 64);
  let fsys = openPool(t, pool);
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.write(f.ino, 0, pattern(2 * MiB, 5));
  fsys.sync();
  const blocks = physical(fsys, f.ino);
  fsys.unlink(ROOT_INO, 'f'); // freed on media: a daemon that held them back for a lease, then died
  fsys.close();
  const leases = new FakeLeases();
  leases.ranges = blocks;
  fsys = openPool(t, pool, { leases });
  t.equal(fsys.core.alloc.leaseHeld, 512, 'the free blocks a live lease covers are held at open');
  const g = fsys.create(ROOT_INO, 'g', 0o644, ROOT);
  for (let i = 0; i < 40; i++) fsys.write(g.ino, i * MiB, Buffer.alloc(MiB, 1));
  const overlap = physical(fsys, g.ino).some((r) => blocks.some((b) => b.start < r.start + r.count && r.start < b.start + b.count));
  t.notOk(overlap, 'none of them was handed out');
});

t.test('the 2 MiB move of an open file: the blocks it left come back at the commit, not at the close', async (t) => {
  const fsys = openPool(t, tempPool(t, 64), { leases: new FakeLeases() });
  fsys.write(fsys.create(ROOT_INO, 's', 0o644, ROOT).ino, 0, Buffer.alloc(5000, 1)); // so f starts unaligned
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.open(f.ino);
  fsys.open(f.ino);
  const data = pattern(3 * MiB, 6);
  fsys.write(f.ino, 0, data.subarray(0, MiB));
  fsys.sync();
  const left = physical(fsys, f.ino);
  fsys.write(f.ino, MiB, data.subarray(MiB));
  fsys.sync();
  const now = physical(fsys, f.ino);
  t.notOk(now.some((r) => left.some((b) => b.start < r.start + r.count && r.start < b.start + b.count)), `moved (${JSON.stringify(left)} -> ${JSON.stringify(now)})`);
  const stillUsed = left.reduce((n, r) => n + Array.from({ length: r.count }, (_, i) => fsys.core.alloc.isUsed(r.start + i)).filter(Boolean).length, 0);
  t.equal(stillUsed, 0, 'every block it left is free while both handles are open');
  t.equal(fsys.core.alloc.leaseHeld, 0, 'nothing held: no lease');
  t.ok(readAll(fsys, f.ino).equals(data), 'data intact');
  fsys.release(f.ino);
  fsys.release(f.ino);
});

t.test('zero range of an open file frees nothing and keeps its blocks (as ext4)', async (t) => {
  const fsys = openPool(t, tempPool(t, 64), { leases: new FakeLeases() });
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.open(f.ino);
  fsys.write(f.ino, 0, pattern(4 * MiB, 8));
  fsys.sync();
  const before = physical(fsys, f.ino);
  const free0 = fsys.core.alloc.freeNow;
  fsys.fallocate(f.ino, 0x10, 0, 4 * MiB); // ZERO_RANGE
  fsys.sync();
  t.same(physical(fsys, f.ino), before, 'the same blocks');
  t.equal(fsys.core.alloc.freeNow, free0, 'no block freed or taken');
  t.equal(fsys.core.alloc.pending, 0, 'nothing waiting for a close');
  t.ok(readAll(fsys, f.ino).equals(Buffer.alloc(4 * MiB)), 'reads zeros');
  fsys.release(f.ino);
});
