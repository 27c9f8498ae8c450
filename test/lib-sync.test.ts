// Dirty tracking on a real mount: msync() writes back exactly the pages
// written (userfaultfd WP-async + PAGEMAP_SCAN) and re-arms them; nosync
// (MAP_DAXVM_NOSYNC, or the msync knob 0) registers nothing and takes no
// write-protect faults; data survives unmount and remount.
import t from 'tap';
import fs from 'node:fs';
import { mmap, MAP_DAXVM, MAP_DAXVM_NOSYNC, libraryFeatures } from '../src/lib/index.js';
import { setKnob } from './helpers/control.js';
import { alignedFile, fragmentedFile, MiB, minorFaults, PAGE, pattern, smapsAt, tablesMount } from './helpers/lib.js';
import { mountPool } from './helpers/mount.js';

const tracking = libraryFeatures().msync === 'pages';

t.test('msync counts exactly the pages written, attached and stitched', { skip: !tracking && 'this kernel has no uffd WP-async + PAGEMAP_SCAN' }, async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 1536 * 1024, 64 * 1024);
  for (const path of [a.path, f.path]) {
    const map = mmap(path, { prot: 'rw', flags: MAP_DAXVM });
    t.equal(map.tracking, 'pages', `${map.mode}: tracked by pages`);
    t.equal(map.dirtyPages, 0, 'nothing written yet');
    let sum = 0;
    for (let i = 0; i < map.length; i += PAGE) sum += map.buffer[i]!;
    t.equal(map.dirtyPages, 0, `reading every page writes none (${sum})`);
    map.buffer[0] = 1;
    map.buffer[5 * PAGE + 1] = 2;
    map.buffer[5 * PAGE + 2] = 3;
    map.buffer[map.length - 1] = 4;
    t.equal(map.dirtyPages, 3, 'three pages written');
    t.equal(map.msync(0, PAGE), 1, 'msync of the first page: one');
    t.equal(map.msync(), 2, 'then the other two');
    t.equal(map.msync(), 0, 're-armed: nothing new');
    map.buffer.fill(9, 64 * 1024, 64 * 1024 + 10 * PAGE);
    t.equal(map.msync(), 10, 'ten pages filled: ten');
    t.equal(map.persist(0, PAGE), undefined, 'persist works beside tracking');
    map.unmap();
  }
  await m.stop();
});

t.test('nosync: nothing registered, no write-protect faults; persist is the flush', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const pages = 1024;
  // Minor faults are counted for the whole process, so other work (the GC,
  // a loaded machine) can only add to them: the least of three tries is the
  // mapping's own count.
  function faultsOfTwoPasses(map: ReturnType<typeof mmap>): number {
    let least = Infinity;
    for (let attempt = 0; attempt < 3; attempt++) {
      for (let i = 0; i < pages; i++) map.buffer[i * PAGE] = 1; // populate
      map.msync();
      const before = minorFaults();
      for (let i = 0; i < pages; i++) map.buffer[i * PAGE + 1] = 2;
      least = Math.min(least, minorFaults() - before);
    }
    return least;
  }
  const ns = mmap(a.path, { prot: 'rw', flags: MAP_DAXVM | MAP_DAXVM_NOSYNC });
  t.ok(ns.nosync);
  t.equal(ns.tracking, 'none');
  t.equal(ns.dirtyPages, null, 'nobody counts');
  const vma = smapsAt(ns.address!);
  t.ok(vma, 'its memory is in smaps');
  t.notOk(vma!.flags.includes('uw'), `not registered with userfaultfd (VmFlags ${vma!.flags.join(' ')})`);
  const nsFaults = faultsOfTwoPasses(ns);
  t.ok(nsFaults < pages / 10, `writes after msync take no faults (${nsFaults} for ${pages} pages)`);
  t.equal(ns.msync(), 0, 'msync does nothing in nosync mode');
  ns.persist(0, 4 * MiB);
  t.equal(fs.readFileSync(a.path)[1], 2, 'the stores are in the file');
  ns.unmap();

  if (tracking) {
    const tr = mmap(a.path, { prot: 'rw', flags: MAP_DAXVM });
    t.ok(smapsAt(tr.address!)!.flags.includes('uw'), 'a tracked mapping is registered (VmFlags uw)');
    const trFaults = faultsOfTwoPasses(tr);
    t.ok(trFaults >= pages, `tracked: each page re-armed by msync faults once (${trFaults})`);
    tr.unmap();
  }

  setKnob(m.mnt, 'msync', 0);
  const k = mmap(a.path, { prot: 'rw', flags: MAP_DAXVM });
  t.ok(k.nosync, 'the msync knob 0 makes every mapping nosync');
  t.equal(k.tracking, 'none');
  k.buffer[0] = 5;
  t.equal(k.msync(), 0);
  k.unmap();
  const f = fragmentedFile(m.mnt, 'f', 512 * 1024, 64 * 1024);
  const s = mmap(f.path, { prot: 'rw', flags: MAP_DAXVM });
  t.equal(s.mode, 'stitched');
  t.ok(s.nosync);
  t.notOk(smapsAt(s.address!)!.flags.includes('uw'), 'a nosync stitched span is not registered either');
  s.unmap();
  await m.stop();
});

t.test('vanilla: the kernel tracks (through FUSE), msync writes back the whole range asked', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 64 * 1024);
  const v = mmap(a.path, { prot: 'rw' });
  t.equal(v.mode, 'vanilla');
  t.equal(v.tracking, 'whole-range');
  v.buffer[0] = 42;
  t.equal(v.msync(), 16, 'vanilla: every page of the range');
  t.equal(v.msync(PAGE, 2 * PAGE), 2);
  v.unmap();
  t.equal(fs.readFileSync(a.path)[0], 42);
  await m.stop();
});

t.test('data written through mappings survives unmount and remount', async (t) => {
  const m = await tablesMount(t);
  const a = alignedFile(m.mnt, 'a', 4 * MiB);
  const f = fragmentedFile(m.mnt, 'f', 1 * MiB, 64 * 1024);
  const newA = pattern(4 * MiB, 11);
  const newF = pattern(1 * MiB, 12);
  const ma = mmap(a.path, { prot: 'rw', flags: MAP_DAXVM });
  const mf = mmap(f.path, { prot: 'rw', flags: MAP_DAXVM });
  t.equal(ma.mode, 'attached');
  t.equal(mf.mode, 'stitched');
  newA.copy(ma.buffer);
  newF.copy(mf.buffer);
  ma.msync();
  mf.msync();
  ma.unmap();
  mf.unmap();
  const pool = m.pool;
  await m.stop();
  const again = await mountPool(t, pool);
  t.ok(fs.readFileSync(`${again.mnt}/a`).equals(newA), 'the aligned file');
  t.ok(fs.readFileSync(`${again.mnt}/f`).equals(newF), 'the fragmented file');
  const back = mmap(`${again.mnt}/a`, { flags: MAP_DAXVM });
  t.equal(back.mode, 'attached', 'tables are still there after the remount');
  t.ok(back.buffer.equals(newA));
  back.unmap();
  await again.stop();
});
