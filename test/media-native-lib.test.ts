/**
 * The native shim's pieces for the client library, on a plain host file
 * standing in for a pool: pool views, stitched spans, dirty tracking with
 * userfaultfd WP-async + PAGEMAP_SCAN, the ephemeral heap, zombies,
 * getxattr, retire (mmap-io buffers).
 */
import t from 'tap';
import type * as Tap from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { native } from '../src/lib/native.js';

const MiB = 1024 * 1024;
const PAGE = 4096;
const require = createRequire(import.meta.url);
const mmapIo = require('@riaskov/mmap-io') as {
  map(size: number, prot: number, flags: number, fd: number, offset?: number): Buffer;
};

function hostPool(t: Tap.Test, size = 16 * MiB): string {
  const p = path.join(t.testdir(), 'pool.bin');
  fs.writeFileSync(p, '');
  fs.truncateSync(p, size);
  return p;
}

function mapsLines(needle: string): number {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(needle)).length;
}

const f = native.features();
const tracking = f.tracking;

t.test('features: the kernel probed once, what tracking needs', async (t) => {
  t.type(f.userfaultfd, 'boolean');
  t.type(f.pagemapScan, 'boolean');
  t.equal(f.tracking, f.userfaultfd && f.wpAsync && f.pagemapScan && !process.env.DAXVM_NO_TRACKING);
});

t.test('pool views: mapped once per process, aligned, shared', async (t) => {
  const p = hostPool(t);
  const ro = native.poolView(p, 'ro');
  const again = native.poolView(p, 'ro');
  t.equal(again.address, ro.address, 'the same view the second time');
  t.equal(ro.address % (2 * MiB), 0, '2 MiB-aligned');
  t.equal(ro.size, 16 * MiB);
  const rw = native.poolView(p, 'rw');
  t.not(rw.address, ro.address, 'read-write is a view of its own');
  t.equal(rw.tracked, tracking);
  const w = Buffer.from(native.view(rw.handle, 5 * PAGE, PAGE));
  w.write('shared', 0);
  t.equal(Buffer.from(native.view(ro.handle, 5 * PAGE, 6)).toString(), 'shared', 'the read-only view sees the store');
  t.equal(fs.readFileSync(p).subarray(5 * PAGE, 5 * PAGE + 6).toString(), 'shared', 'and so does read(2)');
  native.unmap(rw.handle);
  t.equal(w.length, 6 > 0 ? PAGE : 0, 'unmap of a pool view is a no-op: the view stays');
  t.throws(() => native.poolView(path.join(t.testdir(), 'nope'), 'ro'), { code: 'ENOENT', syscall: 'open(pool)' });
});

t.test('dirty tracking: exactly the pages written, re-armed in the same call', { skip: !tracking && 'no uffd WP-async / PAGEMAP_SCAN' }, async (t) => {
  const p = hostPool(t);
  const rw = native.poolView(p, 'rw');
  const all = 16 * MiB;
  native.syncWritten(rw.handle, 0, all, true);
  const b = Buffer.from(native.view(rw.handle, 0, all));
  let sum = 0;
  for (let i = 0; i < all; i += PAGE) sum += b[i]!;
  t.equal(native.countWritten(rw.handle, 0, all), 0, `reading every page writes none (${sum})`);
  b[0] = 1;
  b[3 * PAGE + 7] = 2;
  b[3 * PAGE + 8] = 3;
  b[all - 1] = 4;
  t.equal(native.countWritten(rw.handle, 0, all), 3, 'three pages written');
  t.equal(native.countWritten(rw.handle, 0, PAGE), 1, 'a sub-range counts its own');
  t.equal(native.syncWritten(rw.handle, 0, all, true), 3, 'msync writes back three');
  t.equal(native.syncWritten(rw.handle, 0, all, true), 0, 'and re-armed them');
  b[PAGE * 100] = 9;
  t.equal(native.syncWritten(rw.handle, 0, all, true), 1, 'a new write is seen');
  const nosync = native.poolView(p, 'rw-untracked');
  t.notOk(nosync.tracked, 'the nosync view is not registered');
  Buffer.from(native.view(nosync.handle, 0, PAGE))[10] = 1;
  t.equal(native.countWritten(rw.handle, 0, all), 0, 'stores through the nosync view are not tracked');
  t.throws(() => native.countWritten(nosync.handle, 0, PAGE), { code: 'ERR_DAXVM_UNTRACKED' });
});

t.test('stitch: runs in order, one span; heap slots reused; private is copy-on-write', async (t) => {
  const p = hostPool(t);
  const fd = fs.openSync(p, 'r+');
  for (let i = 0; i < 64; i++) fs.writeSync(fd, Buffer.from(`page${i}`.padEnd(6, "\0")), 0, 6, i * PAGE);
  const rw = native.poolView(p, 'rw');
  const runs = new Float64Array([10 * PAGE, 2 * PAGE, 3 * PAGE, PAGE, 40 * PAGE, 3 * PAGE]);
  const s = native.stitch(rw.handle, runs, true, false, false, true, null);
  t.notOk(s.heap);
  const b = Buffer.from(native.view(s.handle, 0, 6 * PAGE));
  const starts = [0, 1, 2, 3, 4, 5].map((i) => b.subarray(i * PAGE, i * PAGE + 6).toString());
  t.same(starts, ['page10', 'page11', 'page3\0', 'page40', 'page41', 'page42'], 'each run at its place');
  b.write('X', 2 * PAGE);
  t.equal(fs.readFileSync(p).subarray(3 * PAGE, 3 * PAGE + 5).toString(), 'Xage3', 'stores reach the pool file');
  if (tracking) t.equal(native.syncWritten(s.handle, 0, 6 * PAGE, true), 1, 'tracked: one page written');
  native.unmap(s.handle);
  t.equal(b.length, 0, 'unmap detaches the buffer');
  t.throws(() => native.view(s.handle, 0, 1), { code: 'ERR_DAXVM_UNMAPPED' });

  const before = native.stats();
  const h1 = native.stitch(rw.handle, new Float64Array([0, 3 * MiB]), true, false, true, false, null);
  t.ok(h1.heap, 'from the ephemeral heap');
  t.equal(h1.address % (2 * MiB), 0, 'slot-aligned');
  t.equal(native.stats().heapUsed - before.heapUsed, 4 * MiB, 'two 2 MiB slots');
  native.unmap(h1.handle);
  const h2 = native.stitch(rw.handle, new Float64Array([PAGE, PAGE]), true, false, true, false, null);
  t.equal(h2.address, h1.address, 'a freed slot is reused');
  native.unmap(h2.handle);
  t.equal(native.stats().heapUsed, before.heapUsed, 'all given back');

  const ro = native.poolView(p, 'ro');
  const priv = native.stitch(ro.handle, new Float64Array([20 * PAGE, PAGE]), true, true, false, true, null);
  t.notOk(priv.tracked, 'private spans are never tracked');
  const pb = Buffer.from(native.view(priv.handle, 0, PAGE));
  pb.write('private');
  t.equal(fs.readFileSync(p).subarray(20 * PAGE, 20 * PAGE + 6).toString(), 'page20', 'the file is unchanged');
  native.unmap(priv.handle);
  t.throws(() => native.stitch(rw.handle, new Float64Array([1, PAGE]), true, false, false, false, null), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => native.stitch(rw.handle, new Float64Array([16 * MiB, PAGE]), true, false, false, false, null), { code: 'ERR_INVALID_ARG_TYPE' });
  fs.closeSync(fd);
});

t.test('zombies: queued until the batch is full, then dropped together', async (t) => {
  const p = hostPool(t);
  const rw = native.poolView(p, 'rw');
  const base = native.stats();
  const spans = [0, 1, 2].map(() => native.stitch(rw.handle, new Float64Array([0, 8 * PAGE]), true, false, true, false, null));
  const bufs = spans.map((s) => Buffer.from(native.view(s.handle, 0, PAGE)));
  t.equal(native.zombie(spans[0]!.handle, 20), 0, 'first: queued');
  t.equal(bufs[0]!.length, 0, 'its buffer is detached at once');
  t.equal(native.zombie(spans[1]!.handle, 20), 0, 'second: queued (16 pages < 20)');
  t.equal(native.stats().zombies, base.zombies + 2);
  t.ok(native.stats().heapUsed > base.heapUsed, 'their slots still taken');
  native.unmap(spans[0]!.handle);
  t.pass('unmap of a zombie waits for its batch');
  t.equal(native.zombie(spans[2]!.handle, 20), 3, 'third fills the batch: all three dropped');
  t.equal(native.stats().zombies, 0);
  t.equal(native.stats().heapUsed, base.heapUsed, 'slots back in the heap');
  t.equal(native.flushZombies(), 0);
});

t.test('retire: an mmap-io buffer lets go of its pages at once, and GC later is harmless', async (t) => {
  const p = hostPool(t, MiB);
  const fd = fs.openSync(p, 'r+');
  const name = path.basename(path.dirname(p));
  const buf = mmapIo.map(MiB, 3, 1, fd, 0);
  buf[0] = 1;
  t.equal(mapsLines(name), 1, 'mapped');
  native.retire(buf.buffer as ArrayBuffer);
  t.equal(buf.length, 0, 'detached');
  t.equal(mapsLines(name), 0, 'the file mapping is gone');
  native.retire(buf.buffer as ArrayBuffer);
  t.pass('twice is harmless');
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  fs.closeSync(fd);
});

t.test('getxattr: values and Node-style errors', async (t) => {
  const p = hostPool(t, MiB);
  const r = (await import('node:child_process')).spawnSync('setfattr', ['-n', 'user.x', '-v', 'hello', p]);
  if (r.status === 0) t.equal(native.getxattr(p, 'user.x').toString(), 'hello');
  t.throws(() => native.getxattr(p, 'user.none'), { code: 'ENODATA', syscall: 'getxattr' });
  t.throws(() => native.getxattr(p + '.no', 'user.x'), { code: 'ENOENT', syscall: 'getxattr' });
});
