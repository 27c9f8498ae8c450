// The native shim on its own: Node-shaped errors, views over one mapping,
// unmap detaching every view, msync/madvise ranges, non-blocking flock.
import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { native, type MapHandle } from '../src/media/native.js';

function mapFile(t: Test, size: number, writable = true): { fd: number; h: MapHandle; p: string } {
  const p = path.join(t.testdir(), 'f.bin');
  fs.writeFileSync(p, Buffer.alloc(0));
  fs.truncateSync(p, size);
  const fd = fs.openSync(p, writable ? 'r+' : 'r');
  t.teardown(() => fs.closeSync(fd));
  return { fd, h: native.map(fd, size, writable), p };
}

t.test('system-call failures look like Node errors', (t) => {
  t.throws(() => native.map(1_000_000, 4096, false),
    { code: 'EBADF', errno: -9, syscall: 'mmap', message: /^EBADF: Bad file descriptor, mmap$/ });
  const p = path.join(t.testdir(), 'ro.bin');
  fs.writeFileSync(p, Buffer.alloc(4096));
  const fd = fs.openSync(p, 'r');
  t.throws(() => native.map(fd, 4096, true), { code: 'EACCES', syscall: 'mmap', errno: -13 },
    'a writable map of a read-only descriptor');
  t.throws(() => native.map(fd, 0, false), { code: 'EINVAL', syscall: 'mmap' });
  fs.closeSync(fd);
  t.throws(() => native.flock(fd, 'shared'), { code: 'EBADF', syscall: 'flock' });
  t.end();
});

t.test('arguments are checked', (t) => {
  const { fd, h } = mapFile(t, 8192);
  t.throws(() => native.view({} as MapHandle, 0, 1), TypeError, 'not a handle');
  t.throws(() => native.view(h, -1, 1), TypeError);
  t.throws(() => native.view(h, 0.5, 1), TypeError);
  t.throws(() => native.view(h, 8192, 1), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  t.throws(() => native.view(h, 4096, 4097), RangeError);
  t.throws(() => native.msync(h, 0, 8193), RangeError);
  t.throws(() => native.madvise(h, 0, 1, 'bogus' as 'random'), TypeError);
  t.throws(() => native.flock(fd, 'bogus' as 'shared'), TypeError);
  t.equal(native.view(h, 8192, 0).byteLength, 0, 'an empty view at the end is fine');
  native.unmap(h);
  t.end();
});

t.test('views share the mapping; msync and madvise take any range', (t) => {
  const { h, p } = mapFile(t, 3 * 4096 + 100);
  const a = Buffer.from(native.view(h, 0, 3 * 4096 + 100));
  const b = Buffer.from(native.view(h, 4096, 4096)); // overlaps a
  const c = Buffer.from(native.view(h, 4096, 4096)); // same address as b
  b.write('shared', 10);
  t.equal(a.toString('latin1', 4106, 4112), 'shared');
  t.equal(c.toString('latin1', 10, 16), 'shared');
  a.write('tail', 3 * 4096 + 96); // the partial last page of the file
  native.msync(h, 4100, 3); // unaligned: the covering page is synced
  native.msync(h, 3 * 4096 + 50, 50); // up to the end of the mapping
  native.msync(h, 0, 0);
  const file = fs.readFileSync(p);
  t.equal(file.toString('latin1', 4106, 4112), 'shared');
  t.equal(file.toString('latin1', 3 * 4096 + 96), 'tail');
  for (const adv of ['willneed', 'sequential', 'random', 'hugepage'] as const) {
    native.madvise(h, 1, 3 * 4096 + 99, adv);
    t.pass(`madvise ${adv}`);
  }
  native.unmap(h);
  t.end();
});

t.test('unmap detaches every view and is idempotent', (t) => {
  const { h } = mapFile(t, 1 << 20);
  const ab = native.view(h, 0, 1 << 20);
  const buf = Buffer.from(native.view(h, 4096, 4096));
  const twin = Buffer.from(native.view(h, 4096, 4096));
  buf[0] = 1;
  native.unmap(h);
  t.equal(ab.byteLength, 0);
  t.equal(buf.length, 0);
  t.equal(twin.length, 0);
  t.equal(buf[0], undefined, 'reads nothing instead of freed memory');
  native.unmap(h);
  t.pass('second unmap is a no-op');
  t.throws(() => native.view(h, 0, 1), { code: 'ERR_DAXVM_UNMAPPED' });
  t.throws(() => native.msync(h, 0, 1), { code: 'ERR_DAXVM_UNMAPPED' });
  t.end();
});

t.test('many views come and go without harm', async (t) => {
  const { h } = mapFile(t, 1 << 20);
  const keep = Buffer.from(native.view(h, 0, 4096));
  keep[7] = 7;
  for (let i = 0; i < 50_000; i++) native.view(h, (i % 256) * 4096, 4096);
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(keep[7], 7, 'a live view still reads the mapping');
  native.unmap(h);
  t.equal(keep.length, 0);
});

t.test('flock is per open file description and never blocks', (t) => {
  const p = path.join(t.testdir(), 'l.bin');
  fs.writeFileSync(p, 'x');
  const fd1 = fs.openSync(p, 'r');
  const fd2 = fs.openSync(p, 'r');
  native.flock(fd1, 'exclusive');
  native.flock(fd1, 'exclusive'); // converting one's own lock is fine
  t.throws(() => native.flock(fd2, 'shared'),
    { code: 'EWOULDBLOCK', syscall: 'flock', errno: -11 });
  native.flock(fd1, 'shared');
  native.flock(fd2, 'shared');
  t.throws(() => native.flock(fd2, 'exclusive'), { code: 'EWOULDBLOCK' });
  native.flock(fd1, 'unlock');
  native.flock(fd2, 'exclusive');
  t.pass('free after unlock');
  fs.closeSync(fd1);
  fs.closeSync(fd2);
  t.end();
});
