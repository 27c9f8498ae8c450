// The library's three paths on a real mount: attached (a 2 MiB-aligned
// file), stitched (fragmented files, PTE runs and whole 2 MiB entries),
// vanilla (no MAP_DAXVM, no tables, holes, no access to the pool), and
// Node-style errors.
import t from 'tap';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { mmap, MAP_DAXVM, MAP_DAXVM_EPHEMERAL } from '../src/lib/index.js';
import { setKnob } from './helpers/control.js';
import { alignedFile, fragmentedFile, MiB, PAGE, smapsAt, tablesMount } from './helpers/lib.js';
import { ROOT } from './helpers/mount.js';

t.test('attached: a 2 MiB-aligned file is a Buffer over the pool view, no new VMA', async (t) => {
  const m = await tablesMount(t);
  const f = alignedFile(m.mnt, 'aligned', 8 * MiB);
  const a = mmap(f.path, { flags: MAP_DAXVM });
  t.equal(a.mode, 'attached');
  t.ok(a.usedTables);
  t.equal(a.runs, 1);
  t.same(a.leaves, { pte: 0, pmd: 4, pud: 0 }, 'four huge PMD entries');
  t.equal(a.length, 8 * MiB);
  t.ok(a.buffer.equals(f.data), 'the bytes of the file');
  const b = mmap(f.path, { flags: MAP_DAXVM, offset: 2 * MiB, length: 3 * MiB + 5 });
  t.equal(b.mode, 'attached');
  t.equal(b.buffer.length, 3 * MiB + 5);
  t.ok(b.buffer.equals(f.data.subarray(2 * MiB, 5 * MiB + 5)), 'a sub-range');
  t.same(b.leaves, { pte: 257, pmd: 1, pud: 0 }, 'its leaves: one 2 MiB entry and 257 PTEs (counted from its run when asked)');
  const vma = smapsAt(b.address!);
  t.ok(vma && vma.range[1] - vma.range[0] === 512 * MiB, 'its memory is the pool view (one VMA over the whole 512 MiB pool)');
  t.equal(smapsAt(a.address!)?.range[0], vma?.range[0], 'the same VMA for both: no new VMA per mapping');
  a.unmap();
  b.unmap();
  await m.stop();
});

t.test('stitched: fragmented files become one span, one fixed map per run', async (t) => {
  const m = await tablesMount(t);
  // Under 2 MiB: 64 KiB runs, PTE entries.
  const small = fragmentedFile(m.mnt, 'frag-small', 1536 * 1024, 64 * 1024, 3);
  const s = mmap(small.path, { flags: MAP_DAXVM });
  t.equal(s.mode, 'stitched');
  t.equal(s.runs, 24, '24 runs of 64 KiB');
  t.equal(s.leaves.pte, 384, 'PTE entries');
  t.ok(s.buffer.equals(small.data), 'the bytes, in file order');
  const vma = smapsAt(s.address!);
  t.ok(vma && vma.range[1] - vma.range[0] <= 64 * 1024, 'the first run is a VMA of its own (64 KiB)');
  s.unmap();

  // 8 MiB in 2 MiB chunks: each its own aligned region, taken whole.
  const big = fragmentedFile(m.mnt, 'frag-big', 8 * MiB, 2 * MiB, 4);
  const g = mmap(big.path, { flags: MAP_DAXVM, prot: 'rw' });
  t.equal(g.mode, 'stitched');
  t.ok(g.runs >= 2 && g.runs <= 4, `${g.runs} runs: its 2 MiB regions alternate with the other file's`);
  t.same(g.leaves, { pte: 0, pmd: 4, pud: 0 }, 'huge PMD entries taken whole');
  t.ok(g.buffer.equals(big.data));
  g.unmap();
  const e = mmap(big.path, { flags: MAP_DAXVM_EPHEMERAL, length: 6 * MiB, offset: 2 * MiB });
  t.equal(e.mode, 'stitched');
  t.ok(e.ephemeral, 'from the ephemeral heap');
  t.ok(e.buffer.equals(big.data.subarray(2 * MiB)), 'ephemeral span, same bytes');
  e.unmap();
  await m.stop();
});

t.test('vanilla: without MAP_DAXVM, without tables, with holes', async (t) => {
  const m = await tablesMount(t);
  const f = alignedFile(m.mnt, 'f', 4 * MiB);
  const v = mmap(f.path);
  t.equal(v.mode, 'vanilla');
  t.equal(v.fallbackReason, 'MAP_DAXVM not set');
  t.notOk(v.usedTables);
  t.ok(v.buffer.equals(f.data), 'the page cache of the mount has the same bytes');
  v.unmap();
  t.equal(v.buffer.length, 0, 'detached');

  const sparse = join(m.mnt, 'sparse');
  fs.writeFileSync(sparse, 'x');
  fs.truncateSync(sparse, 3 * PAGE);
  const h = mmap(sparse, { flags: MAP_DAXVM });
  t.equal(h.mode, 'vanilla');
  t.match(h.fallbackReason, /2 page\(s\) of the range have no block/);
  t.equal(h.buffer[0], 'x'.charCodeAt(0));
  h.unmap();

  setKnob(m.mnt, 'page_tables_on', 0);
  const n = mmap(f.path, { flags: MAP_DAXVM });
  t.equal(n.mode, 'vanilla');
  t.match(n.fallbackReason, /no page tables/);
  n.unmap();
  await m.stop();
});

t.test('Node-style errors', async (t) => {
  const m = await tablesMount(t, '512M', ['allow_other']);
  const f = alignedFile(m.mnt, 'f', 64 * 1024);
  t.throws(() => mmap(join(m.mnt, 'missing'), { flags: MAP_DAXVM }), { code: 'ENOENT' });
  t.throws(() => mmap(m.mnt, { flags: MAP_DAXVM }), { code: 'EISDIR' });
  t.throws(() => mmap(f.path, { offset: 100 }), { code: 'EINVAL', syscall: 'mmap' });
  t.throws(() => mmap(f.path, { length: 0 }), { code: 'EINVAL' });
  t.throws(() => mmap(f.path, { flags: 1 }), { code: 'EINVAL' });
  t.throws(() => mmap(f.path, { prot: 'x' as 'r' }), { code: 'EINVAL' });
  t.throws(() => mmap(f.path, { offset: 1 * MiB }), { code: 'EINVAL' }, 'nothing past the end');
  t.throws(() => mmap(f.path, { flags: MAP_DAXVM_EPHEMERAL, private: true }), { code: 'EINVAL' });
  const empty = join(m.mnt, 'empty');
  fs.writeFileSync(empty, '');
  t.throws(() => mmap(empty, { flags: MAP_DAXVM }), { code: 'EINVAL' });

  // As nobody: the kernel refuses a 0600 file (EACCES); a readable one maps, vanilla (the pool is root's, 0600).
  fs.chmodSync(f.path, 0o600);
  const open = join(m.mnt, 'open');
  fs.writeFileSync(open, Buffer.alloc(8192, 7));
  fs.chmodSync(open, 0o644);
  fs.chmodSync(m.mnt, 0o755);
  fs.chmodSync(dirname(m.mnt), 0o755);
  const script = `
    import { mmap, MAP_DAXVM } from ${JSON.stringify(join(ROOT, 'dist/lib/index.js'))};
    process.setgid(65534); process.setuid(65534);
    const out = {};
    try { mmap(${JSON.stringify(f.path)}, { flags: MAP_DAXVM }); out.closed = 'mapped'; } catch (e) { out.closed = e.code; }
    const v = mmap(${JSON.stringify(open)}, { flags: MAP_DAXVM });
    out.mode = v.mode; out.reason = v.fallbackReason; out.byte = v.buffer[100];
    try { mmap(${JSON.stringify(open)}, { flags: MAP_DAXVM, prot: 'rw' }); out.rw = 'mapped'; } catch (e) { out.rw = e.code; }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: '/' });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout || '{}') as Record<string, unknown>;
  t.equal(out.closed, 'EACCES', 'a file nobody may read: EACCES');
  t.equal(out.mode, 'vanilla', 'no access to the pool: vanilla');
  t.match(String(out.reason), /no access to the pool file/);
  t.equal(out.byte, 7);
  t.equal(out.rw, 'EACCES', "'rw' of a 0644 file: EACCES");
  await m.stop();
});
