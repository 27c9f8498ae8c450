/**
 * The lease the library relies on: blocks a mapping may reach are never
 * moved or reused while a second handle is open (the writer's own is one).
 */
import t from 'tap';
import type * as Tap from 'tap';
import { ROOT_INO } from '../src/fs/index.js';
import { openPool, pattern, readAll, ROOT, tempPool } from './helpers/pool.js';

const MiB = 1024 * 1024;

function growPast2MiB(t: Tap.Test, handles: number): { before: number[]; after: number[]; aligned: boolean; intact: boolean } {
  const fsys = openPool(t, tempPool(t, 128));
  // A small file first, so the next one starts unaligned.
  fsys.write(fsys.create(ROOT_INO, 's', 0o644, ROOT).ino, 0, Buffer.alloc(5000, 1));
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  for (let i = 0; i < handles; i++) fsys.open(f.ino);
  const data = pattern(4 * MiB, 3);
  fsys.write(f.ino, 0, data.subarray(0, 64 * 1024));
  fsys.sync();
  const before = fsys.core.inode(f.ino).extents.items.map((e) => e.physical);
  for (let off = 64 * 1024; off < data.length; off += 256 * 1024) fsys.write(f.ino, off, data.subarray(off, off + 256 * 1024));
  fsys.sync();
  const items = fsys.core.inode(f.ino).extents.items;
  const intact = readAll(fsys, f.ino).equals(data);
  for (let i = 0; i < handles; i++) fsys.release(f.ino);
  return { before, after: items.map((e) => e.physical), aligned: items.every((e) => (e.physical - e.logical) % 512 === 0), intact };
}

t.test('the writer alone: the first 2 MiB move once to an aligned region', async (t) => {
  const r = growPast2MiB(t, 1);
  t.ok(r.aligned, `aligned: ${JSON.stringify(r.after)}`);
  t.not(r.after[0], r.before[0], 'the first blocks moved');
  t.ok(r.intact, 'data intact');
});

t.test("a second handle open (a mapping's lease): nothing moves", async (t) => {
  const r = growPast2MiB(t, 2);
  t.equal(r.after[0], r.before[0], `the first blocks stay where a mapping may see them (${JSON.stringify(r.after)})`);
  t.notOk(r.aligned, 'so the file stays unaligned');
  t.ok(r.intact, 'data intact');
});
