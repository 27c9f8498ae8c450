// A mapping's life: unmap detaches at once (a stale buffer reaches no
// memory), GC never double-unmaps, stores into 'r' mappings SIGSEGV (the
// file unchanged), the lease keeps a mapped file's blocks from reuse,
// batching (zombies dropped at zombie_max_pages), the ephemeral heap,
// private (copy-on-write) mappings, worker threads.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { mmap, libraryStats, flushBatched, MAP_DAXVM, MAP_DAXVM_BATCHING, MAP_DAXVM_EPHEMERAL } from '../src/lib/index.js';
import { setKnob } from './helpers/control.js';
import { alignedFile, catBytes, collect, fragmentedFile, MiB, PAGE, pattern, tablesMount } from './helpers/lib.js';
import { ROOT } from './helpers/mount.js';

const LIB = join(ROOT, 'dist/lib/index.js');

function mapsWith(needle: string): number {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(needle)).length;
}

t.test('unmap detaches at once; twice is fine; use after unmap is an error', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 1 * MiB, 64 * 1024);
  for (const [path, flags] of [[a.path, MAP_DAXVM], [f.path, MAP_DAXVM], [a.path, 0]] as const) {
    const map = mmap(path, { prot: 'rw', flags });
    const view = map.buffer.subarray(PAGE, 2 * PAGE);
    map.unmap();
    t.equal(map.buffer.length, 0, `${map.mode}: the buffer is detached`);
    t.equal(view.length, 0, 'and every view of it');
    t.equal(map.buffer[0], undefined, 'reads find nothing');
    map.buffer[0] = 1; // a store to a detached buffer goes nowhere
    map.unmap();
    t.ok(map.unmapped);
    t.throws(() => map.msync(), { code: 'ENOMEM' });
    t.throws(() => map.dirtyPages, { code: 'ENOMEM' });
  }
  t.ok(catBytes(a.path).equals(a.data), 'the file is whole');
  await m.stop();
});

t.test('the garbage collector never double-unmaps, and closes the leases', async (t) => {
  const m = await tablesMount(t);
  const f = fragmentedFile(m.mnt, 'f', 512 * 1024, 64 * 1024);
  const a = alignedFile(m.mnt, 'a', 2 * MiB);
  const fds = () => fs.readdirSync('/proc/self/fd').length;
  const fd0 = fds();
  const spans0 = mapsWith(m.pool);
  (() => {
    for (let i = 0; i < 50; i++) {
      const s = mmap(f.path, { flags: MAP_DAXVM });
      if (i % 2) s.unmap(); // half explicit, half left to the GC
      mmap(a.path, { flags: MAP_DAXVM });
      mmap(a.path); // vanilla, left to the GC
    }
  })();
  await collect();
  await new Promise((r) => setTimeout(r, 100));
  await collect();
  t.ok(mapsWith(m.pool) <= spans0 + 1, `stitched spans dropped (${mapsWith(m.pool)} pool VMAs, ${spans0} before)`);
  t.ok(fds() <= fd0 + 2, `leases closed (${fds()} fds, ${fd0} before)`);
  const s = mmap(f.path, { flags: MAP_DAXVM });
  t.ok(s.buffer.equals(f.data), 'mapping still works');
  s.unmap();
  await m.stop();
});

t.test("a store into an 'r' mapping dies with SIGSEGV; the file is unchanged", async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 2 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 512 * 1024, 64 * 1024);
  for (const file of [a, f]) {
    const script = `
      import { mmap, MAP_DAXVM } from ${JSON.stringify(LIB)};
      const map = mmap(${JSON.stringify(file.path)}, { flags: MAP_DAXVM });
      console.log(map.mode);
      map.buffer[100] = map.buffer[100] ^ 0xff;
      console.log('survived');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    t.equal(r.signal, 'SIGSEGV', `killed by SIGSEGV (${r.stdout.trim()})`);
    t.notMatch(r.stdout, /survived/);
    t.ok(catBytes(file.path).equals(file.data), 'the file is unchanged');
  }
  await m.stop();
});

t.test('the lease: truncate and unlink of a mapped file reuse none of its blocks', async (t) => {
  const m = await tablesMount(t, '64M');
  const a = alignedFile(m.mnt, 'a', 8 * MiB, 5);
  const map = mmap(a.path, { flags: MAP_DAXVM });
  t.equal(map.mode, 'attached');
  fs.truncateSync(a.path, 0);
  fs.unlinkSync(a.path);
  // Fill the pool with other data: the mapped blocks must not be handed out.
  const filler = pattern(MiB, 9);
  for (let i = 0; ; i++) {
    try {
      fs.writeFileSync(join(m.mnt, `fill${i}`), filler);
    } catch {
      break;
    }
  }
  t.ok(map.buffer.equals(a.data), 'the mapping still shows the old bytes');
  map.unmap();
  await m.stop();
});

t.test('batching: unmap returns at once, spans dropped together at zombie_max_pages', async (t) => {
  const m = await tablesMount(t);
  setKnob(m.mnt, 'zombie_max_pages', 512); // 2 MiB of spans
  const f = fragmentedFile(m.mnt, 'f', 512 * 1024, 64 * 1024); // 128 pages a mapping
  flushBatched();
  mmap(f.path, { flags: MAP_DAXVM }).unmap(); // the pool's view is mapped once, here
  const spans0 = mapsWith(m.pool);
  const maps = [0, 1, 2].map(() => mmap(f.path, { flags: MAP_DAXVM | MAP_DAXVM_BATCHING }));
  t.ok(maps.every((x) => x.mode === 'stitched' && x.batching));
  for (const x of maps) x.unmap();
  t.ok(maps.every((x) => x.buffer.length === 0), 'buffers detached at once');
  t.equal(libraryStats().zombies, 3, 'three zombies');
  t.ok(mapsWith(m.pool) > spans0, 'their spans are still mapped');
  const fourth = mmap(f.path, { flags: MAP_DAXVM | MAP_DAXVM_BATCHING });
  fourth.unmap();
  t.equal(libraryStats().zombies, 0, '512 pages reached: all dropped together');
  t.equal(mapsWith(m.pool), spans0, 'no span left');
  const fifth = mmap(f.path, { flags: MAP_DAXVM | MAP_DAXVM_BATCHING });
  fifth.unmap();
  t.equal(flushBatched(), 1, 'flushBatched drops the rest');
  // At exit: a child leaves zombies behind and exits cleanly.
  const script = `
    import { mmap, libraryStats, MAP_DAXVM, MAP_DAXVM_BATCHING } from ${JSON.stringify(LIB)};
    mmap(${JSON.stringify(f.path)}, { flags: MAP_DAXVM | MAP_DAXVM_BATCHING }).unmap();
    console.log(libraryStats().zombies);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout.trim(), '1', 'one zombie at exit, dropped by the exit hook');
  await m.stop();
});

t.test('ephemeral heap: 2 MiB slots, bump pointer, reused when free', async (t) => {
  const m = await tablesMount(t);
  const f = fragmentedFile(m.mnt, 'f', 512 * 1024, 64 * 1024);
  const s0 = libraryStats();
  const a = mmap(f.path, { flags: MAP_DAXVM_EPHEMERAL });
  const b = mmap(f.path, { flags: MAP_DAXVM_EPHEMERAL });
  t.ok(a.ephemeral && b.ephemeral);
  t.equal(b.address! - a.address!, 2 * MiB, 'the bump pointer moves one slot');
  t.equal(libraryStats().heapUsed - s0.heapUsed, 4 * MiB);
  a.unmap();
  const c = mmap(f.path, { flags: MAP_DAXVM_EPHEMERAL });
  t.equal(c.address, a.address, 'a free slot is reused');
  t.ok(c.buffer.equals(f.data));
  b.unmap();
  c.unmap();
  t.equal(libraryStats().heapUsed, s0.heapUsed, 'all slots free');
  await m.stop();
});

t.test('private mappings: copy-on-write, the file never changes', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 2 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 512 * 1024, 64 * 1024);
  for (const file of [a, f]) {
    const p = mmap(file.path, { prot: 'rw', flags: MAP_DAXVM, private: true });
    t.equal(p.mode, 'stitched', 'private: a span of its own');
    t.equal(p.tracking, 'none');
    p.buffer.fill(0xee, 0, 3 * PAGE);
    t.equal(p.buffer[PAGE], 0xee, 'the process sees its stores');
    t.equal(p.msync(), 0);
    t.ok(catBytes(file.path).equals(file.data), 'the file does not');
    const shared = mmap(file.path, { flags: MAP_DAXVM });
    t.equal(shared.buffer[PAGE], file.data[PAGE], 'nor does another mapping');
    shared.unmap();
    p.unmap();
  }
  const v = mmap(a.path, { prot: 'rw', private: true });
  t.equal(v.mode, 'vanilla');
  v.buffer[0] = v.buffer[0]! ^ 1;
  v.unmap();
  t.ok(catBytes(a.path).equals(a.data), 'vanilla private too');
  await m.stop();
});

t.test('worker threads: the pool is mapped once per process; mapping from several at once', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 1 * MiB, 64 * 1024);
  const first = mmap(a.path, { prot: 'rw', flags: MAP_DAXVM });
  const views0 = mapsWith(m.pool);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.message));
    import(workerData.lib).then(({ mmap, MAP_DAXVM, MAP_DAXVM_EPHEMERAL }) => {
      let ok = 0;
      for (let i = 0; i < 40; i++) {
        const x = mmap(workerData.a, { flags: MAP_DAXVM, prot: 'rw' });
        const y = mmap(workerData.f, { flags: MAP_DAXVM_EPHEMERAL });
        if (x.mode === 'attached' && y.mode === 'stitched' && x.buffer[7] === workerData.a7 && y.buffer[9] === workerData.f9) ok++;
        x.buffer[workerData.id * 4096] = workerData.id;
        x.msync();
        x.unmap(); y.unmap();
      }
      setImmediate(() => parentPort.postMessage(warnings.length ? warnings.join('; ') : ok)); // warnings are emitted on the next tick
    }, (e) => parentPort.postMessage(String(e.stack)));`;
  const results = await Promise.all([1, 2, 3, 4].map((id) => new Promise<unknown>((res, rej) => {
    const w = new Worker(code, { eval: true, workerData: { lib: LIB, a: a.path, f: f.path, id, a7: a.data[7], f9: f.data[9] } });
    w.once('message', res);
    w.once('error', rej);
  })));
  t.same(results, [40, 40, 40, 40], 'every worker mapped and read the right bytes, and got no warning (a pinned inode closed by fs.closeSync in a worker printed one per unmap)');
  t.equal(mapsWith(m.pool), views0, 'no new pool views: workers share the process\'s');
  t.same([1, 2, 3, 4].map((id) => first.buffer[id * PAGE]), [1, 2, 3, 4], 'their stores are in the mapping of the main thread');
  first.unmap();
  await m.stop();
});
