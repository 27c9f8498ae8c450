/** Persistent page tables on the fs layer: shape, exactness, persistence, the knob, fsck. */
import fs from 'node:fs';
import t from 'tap';
import { fsck, openFileSystem, ROOT_INO } from '../src/fs/index.js';
import type { FileSystem } from '../src/fs/index.js';
import { walkTable, type Leaf } from '../src/ppt/tables.js';
import { crashCopy, openPool, pattern, readAll, ROOT, tempPool } from './helpers/pool.js';

const MiB = 1024 * 1024;

function leaves(fsys: FileSystem, ino: number): Leaf[] {
  const out: Leaf[] = [];
  const inode = fsys.core.inode(ino);
  walkTable((b) => fsys.core.nodeStore.node(b), fsys.core.tableOf(inode), (l) => out.push(l));
  return out;
}

/** Every mapped block translates through the table to what the extents say, and nothing else does. */
function exact(fsys: FileSystem, ino: number): boolean {
  const inode = fsys.core.inode(ino);
  let mapped = 0;
  for (const l of leaves(fsys, ino)) {
    const segs = inode.extents.map(l.logical, l.count);
    if (segs.length !== 1 || segs[0]!.physical !== l.physical) return false;
    mapped += l.count;
  }
  return mapped === inode.extents.blocks;
}

function writeFile(fsys: FileSystem, name: string, data: Buffer, chunk = 131072): number {
  const f = fsys.create(ROOT_INO, name, 0o644, ROOT);
  for (let off = 0; off < data.length; off += chunk) fsys.write(f.ino, off, data.subarray(off, off + chunk));
  return f.ino;
}

t.test('table shapes: 4 KiB file, 64 MiB aligned file, fragmented file', async (t) => {
  const fsys = openPool(t, tempPool(t, 256));
  fsys.setKnob('pageTablesOn', 1);
  const small = writeFile(fsys, 'small', Buffer.alloc(4096, 1));
  let inode = fsys.core.inode(small);
  t.equal(inode.pptLevel, 1, 'a 4 KiB file has a PTE root');
  t.equal(inode.pptNodes, 1);
  t.ok(exact(fsys, small));

  const big = writeFile(fsys, 'big', pattern(64 * MiB, 1));
  inode = fsys.core.inode(big);
  t.equal(inode.pptLevel, 2, 'a 64 MiB file has a PMD root');
  t.equal(inode.pptNodes, 1, 'and nothing below it: every entry is huge');
  t.equal(leaves(fsys, big).filter((l) => l.level === 2).length, 32, '32 huge PMD entries');
  t.ok(exact(fsys, big));

  // Fragment: interleave two files 4 KiB at a time, then grow one past 2 MiB.
  const a = fsys.create(ROOT_INO, 'frag', 0o644, ROOT);
  const b = fsys.create(ROOT_INO, 'other', 0o644, ROOT);
  for (let i = 0; i < 200; i++) {
    fsys.write(a.ino, i * 4096, Buffer.alloc(4096, i));
    fsys.write(b.ino, i * 4096, Buffer.alloc(4096, i));
  }
  inode = fsys.core.inode(a.ino);
  t.ok(inode.extents.length > 1, `fragmented: ${inode.extents.length} extents`);
  t.equal(inode.pptLevel, 1);
  t.ok(exact(fsys, a.ino), 'fragmented file: every block through its own PTE');
  t.ok(fsys.occupancy().pmemKB >= 4 * 4, `occupancy counts the nodes: ${JSON.stringify(fsys.occupancy())}`);
});

t.test('tables follow truncate up and down, and holes', async (t) => {
  const fsys = openPool(t, tempPool(t, 128));
  fsys.setKnob('pageTablesOn', 1);
  const ino = writeFile(fsys, 'f', pattern(6 * MiB + 5000, 2));
  t.equal(fsys.core.inode(ino).pptLevel, 2);
  t.ok(exact(fsys, ino));
  fsys.truncate(ino, 3 * MiB + 1);
  t.ok(exact(fsys, ino), 'after truncate down');
  t.notOk(leaves(fsys, ino).some((l) => l.logical + l.count > Math.ceil((3 * MiB + 1) / 4096) && l.level === 1), 'no entry past EOF');
  fsys.truncate(ino, 100000);
  t.equal(fsys.core.inode(ino).pptLevel, 1, 'level shrinks with the size');
  t.ok(exact(fsys, ino));
  fsys.truncate(ino, 3 * 1024 * MiB);
  t.equal(fsys.core.inode(ino).pptLevel, 3, 'a sparse 3 GiB file has a PUD root');
  fsys.write(ino, 2 * 1024 * MiB, Buffer.from('far'));
  t.ok(exact(fsys, ino), 'sparse write far out');
  fsys.truncate(ino, 0);
  t.equal(fsys.core.inode(ino).pptRoot, 0, 'an empty file has no table');
});

t.test('tables persist across remount and a crash; fsck checks them', async (t) => {
  const pool = tempPool(t, 128);
  const fsys = openPool(t, pool);
  fsys.setKnob('pageTablesOn', 1);
  const ino = writeFile(fsys, 'f', pattern(5 * MiB, 3));
  const before = leaves(fsys, ino);
  fsys.fsync(ino, false);
  const copy = crashCopy(t, pool);
  fsys.close();
  const again = openFileSystem(pool, { commitIntervalMs: 0 });
  t.same(leaves(again, ino), before, 'same table after remount');
  t.equal(again.knobs().pageTablesOn, 1, 'the knob persists');
  again.close();
  t.equal(fsck(pool).exitCode, 0);
  const rec = openFileSystem(copy, { commitIntervalMs: 0 });
  t.same(leaves(rec, ino), before, 'same table after a crash');
  rec.close();
  t.equal(fsck(copy).exitCode, 0);
});

t.test('the knob: 0 deletes every table and frees its nodes, 1 builds them for existing files', async (t) => {
  const pool = tempPool(t, 128);
  const fsys = openPool(t, pool);
  const inos = [1, 2, 3, 4].map((i) => writeFile(fsys, `f${i}`, pattern(i * 700 * 1024, i)));
  t.equal(fsys.occupancy().pmemKB, 0, 'off by default: no tables');
  const free0 = fsys.statfs().bfree;
  fsys.setKnob('pageTablesOn', 1);
  t.ok(inos.every((ino) => exact(fsys, ino) && fsys.core.inode(ino).pptRoot > 0), 'built for every existing file');
  t.ok(fsys.statfs().bfree < free0, 'nodes take pool blocks');
  fsys.setKnob('pageTablesOn', 0);
  t.ok(inos.every((ino) => fsys.core.inode(ino).pptRoot === 0), 'deleted');
  fsys.sync();
  t.equal(fsys.statfs().bfree, free0, 'every node freed');
  t.throws(() => fsys.setKnob('pageTablesOn', 2), { code: 'EINVAL' });
  t.ok(inos.every((ino, i) => readAll(fsys, ino).equals(pattern((i + 1) * 700 * 1024, i + 1))), 'data untouched');
});

t.test('fsck finds a corrupt table entry and --repair rebuilds the table', async (t) => {
  const pool = tempPool(t, 64);
  const fsys = openPool(t, pool);
  fsys.setKnob('pageTablesOn', 1);
  const ino = writeFile(fsys, 'f', pattern(300 * 1024, 4));
  const root = fsys.core.inode(ino).pptRoot;
  fsys.close();
  const fd = fs.openSync(pool, 'r+');
  const entry = Buffer.alloc(8);
  entry.writeUInt32LE(((12345 * 4096) % 2 ** 32) | 3, 0);
  fs.writeSync(fd, entry, 0, 8, root * 4096 + 8 * 10);
  fs.closeSync(fd);
  const report = fsck(pool);
  t.equal(report.exitCode, 4);
  t.match(report.problems.map((p) => p.message).join('\n'), /bad page table/);
  t.equal(fsck(pool, { repair: true }).exitCode, 1);
  t.equal(fsck(pool).exitCode, 0, 'clean after the rebuild');
  const again = openFileSystem(pool, { commitIntervalMs: 0 });
  t.ok(exact(again, ino));
  again.close();
});

t.test('turning tables on in a pool too full for them fails with ENOSPC and leaves the knob at 0', async (t) => {
  const fsys = openPool(t, tempPool(t, 24, 'full.pool'));
  let n = 0;
  try {
    for (;;) fsys.write(fsys.create(ROOT_INO, `f${n++}`, 0o644, ROOT).ino, 0, Buffer.alloc(65536, 1));
  } catch (err) {
    t.match((err as Error).message, /ENOSPC/, `filled with ${n} small files`);
  }
  t.throws(() => fsys.setKnob('pageTablesOn', 1), { code: 'ENOSPC' });
  t.equal(fsys.knobs().pageTablesOn, 0, 'the knob is back at 0');
  t.equal(fsys.occupancy().pmemKB, 0, 'no table left behind');
  fsys.close();
});
