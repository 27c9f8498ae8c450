// Pool basics: create/open, that the mapping is really the file, bounds,
// read-only, close, and moves (copyWithin) inside and across windows.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { PoolError } from '../src/core/errors.js';
import { Pool, WINDOW_SIZE } from '../src/media/pool.js';

const MiB = 1 << 20;

t.test('create makes a file of the size asked, allocated on the host, and refuses to overwrite', (t) => {
  const dir = t.testdir();
  const p = path.join(dir, 'a.pool');
  const pool = Pool.create(p, 8 * MiB);
  t.equal(pool.size, 8 * MiB);
  t.equal(pool.readOnly, false);
  t.equal(pool.path, p);
  t.equal(fs.statSync(p).size, 8 * MiB);
  t.equal(fs.statSync(p).mode & 0o777, 0o600, 'private by default');
  t.ok(fs.statSync(p).blocks * 512 >= 8 * MiB, 'allocated on the host (media-host: sparse on request)');
  t.ok(pool.read(0, 8 * MiB).equals(Buffer.alloc(8 * MiB)), 'reads zeros');
  pool.close();

  t.throws(() => Pool.create(p, 8 * MiB), { code: 'EEXIST', message: /--force/ });
  try {
    Pool.create(p, 8 * MiB);
  } catch (err) {
    t.ok(err instanceof PoolError, 'a PoolError');
  }

  // force: the old contents are gone, the new size holds
  const old = Pool.open(p);
  old.write(4096, Buffer.from('old data'));
  old.close();
  const fresh = Pool.create(p, 4 * MiB, { force: true });
  t.equal(fresh.size, 4 * MiB);
  t.ok(fresh.read(4096, 8).equals(Buffer.alloc(8)), 'force starts from zeros');
  fresh.close();
  t.equal(fs.statSync(p).size, 4 * MiB);
  t.end();
});

t.test('create rejects sizes that are not whole 4 KiB blocks', (t) => {
  const dir = t.testdir();
  for (const size of [0, -4096, 4095, 4096 + 1, 1.5, NaN]) {
    t.throws(() => Pool.create(path.join(dir, 'x.pool'), size), { code: 'EINVAL' }, `size ${size}`);
  }
  t.notOk(fs.existsSync(path.join(dir, 'x.pool')), 'nothing created');
  t.end();
});

t.test('open: missing file and empty file', (t) => {
  const dir = t.testdir({ 'empty.pool': '' });
  t.throws(() => Pool.open(path.join(dir, 'nope.pool')), { code: 'ENOENT' });
  t.throws(() => Pool.open(path.join(dir, 'empty.pool')), { code: 'EINVAL' });
  t.end();
});

t.test('the mapping is the file: writes show in the file, file writes show in the pool', (t) => {
  const dir = t.testdir();
  const p = path.join(dir, 'a.pool');
  const pool = Pool.create(p, 4 * MiB);
  const data = Buffer.from('hello, persistent world');
  pool.write(12345, data);
  pool.write(3 * MiB, new Uint8Array([1, 2, 3, 4])); // a plain Uint8Array too
  pool.fill(100, 10, 0xab);
  pool.persist(12345, data.length);
  const file = fs.readFileSync(p);
  t.ok(file.subarray(12345, 12345 + data.length).equals(data));
  t.same([...file.subarray(3 * MiB, 3 * MiB + 4)], [1, 2, 3, 4]);
  t.ok(file.subarray(100, 110).equals(Buffer.alloc(10, 0xab)));
  t.equal(file[99], 0);
  t.equal(file[110], 0);

  const fd = fs.openSync(p, 'r+');
  fs.writeSync(fd, Buffer.from('from outside'), 0, 12, 2 * MiB);
  fs.closeSync(fd);
  t.equal(pool.read(2 * MiB, 12).toString(), 'from outside');

  const dst = Buffer.alloc(30, 0xff);
  pool.readInto(12345, dst, 5, data.length);
  t.ok(dst.subarray(5, 5 + data.length).equals(data));
  t.equal(dst[4], 0xff);
  t.equal(dst[5 + data.length], 0xff);
  const whole = Buffer.alloc(4);
  pool.readInto(3 * MiB, whole);
  t.same([...whole], [1, 2, 3, 4], 'default dstOffset/length fill the buffer');

  pool.persistAll();
  pool.close();
  // and it survives a close and reopen
  const again = Pool.open(p, { readOnly: true });
  t.ok(again.read(12345, data.length).equals(data));
  again.close();
  t.end();
});

t.test('every access is bounds-checked', (t) => {
  const dir = t.testdir();
  const pool = Pool.create(path.join(dir, 'a.pool'), 64 * 1024);
  const size = pool.size;
  const bad: [number, number][] = [[-1, 1], [size, 1], [size - 1, 2], [0, size + 1], [1.5, 1],
    [0, -1], [2 ** 53, 1], [NaN, 1]];
  for (const [off, len] of bad) {
    const msg = `offset ${off} length ${len}`;
    t.throws(() => pool.read(off, len), RangeError, `read ${msg}`);
    if (len >= 0) t.throws(() => pool.write(off, Buffer.alloc(len)), RangeError, `write ${msg}`);
    t.throws(() => pool.fill(off, len), RangeError, `fill ${msg}`);
    t.throws(() => pool.persist(off, len), RangeError, `persist ${msg}`);
    t.throws(() => pool.copyWithin(off, 0, len), RangeError, `copyWithin dst ${msg}`);
    t.throws(() => pool.copyWithin(0, off, len), RangeError, `copyWithin src ${msg}`);
  }
  t.throws(() => pool.read(size - 1, 2), /offset 65535 length 2 pool size 65536/);
  t.throws(() => pool.readInto(0, Buffer.alloc(4), 2, 3), RangeError, 'past the end of dst');
  t.throws(() => pool.fill(0, 1, 256), RangeError, 'fill value is a byte');
  // the edges themselves are fine
  t.equal(pool.read(size - 1, 1).length, 1);
  t.equal(pool.read(size, 0).length, 0);
  pool.write(size - 2, Buffer.from([7, 8]));
  t.same([...pool.read(size - 2, 2)], [7, 8]);
  pool.close();
  t.end();
});

t.test('a read-only pool refuses every store and barrier', (t) => {
  const dir = t.testdir();
  const p = path.join(dir, 'a.pool');
  const w = Pool.create(p, 64 * 1024);
  w.write(0, Buffer.from('keep'));
  w.close();
  const ro = Pool.open(p, { readOnly: true });
  t.equal(ro.readOnly, true);
  t.equal(ro.read(0, 4).toString(), 'keep');
  t.throws(() => ro.write(0, Buffer.from('x')), { code: 'EROFS' });
  t.throws(() => ro.fill(0, 1), { code: 'EROFS' });
  t.throws(() => ro.copyWithin(8, 0, 4), { code: 'EROFS' });
  t.throws(() => ro.persist(0, 4096), { code: 'EROFS' });
  t.throws(() => ro.persistAll(), { code: 'EROFS' });
  t.equal(ro.read(0, 4).toString(), 'keep', 'unchanged');
  ro.close();
  t.end();
});

t.test('close is idempotent, unmaps, and later use throws EBADF', (t) => {
  const dir = t.testdir();
  const pool = Pool.create(path.join(dir, 'a.pool'), 64 * 1024);
  pool.write(0, Buffer.from('abc'));
  // a window Buffer taken before close: the test-only way in to a view
  const win = (pool as unknown as { windowAt(pos: number): Buffer }).windowAt(0);
  t.equal(win.length, 64 * 1024);
  t.equal(win.toString('latin1', 0, 3), 'abc');
  pool.close();
  t.equal(win.length, 0, 'the view was detached, not left over freed memory');
  t.equal(win.buffer.byteLength, 0);
  t.equal(win[0], undefined);
  pool.close();
  t.throws(() => pool.read(0, 1), { code: 'EBADF' });
  t.throws(() => pool.write(0, Buffer.from('x')), { code: 'EBADF' });
  t.throws(() => pool.persistAll(), { code: 'EBADF' });
  t.end();
});

t.test('copyWithin is a memmove, within a window and across windows', (t) => {
  const dir = t.testdir();
  // 2 GiB + 4 MiB sparse: two full windows and a short third one
  const pool = Pool.create(path.join(dir, 'big.pool'), 2 * WINDOW_SIZE + 4 * MiB);
  const pattern = (n: number, seed: number): Buffer => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
    return b;
  };
  const cases: [string, number, number, number][] = [
    ['inside a window, forward overlap', 4096, 4096 + 100, 10000],
    ['inside a window, backward overlap', 8192 + 100, 8192, 10000],
    ['crossing a window boundary, forward overlap', WINDOW_SIZE - 3 * MiB, WINDOW_SIZE - 3 * MiB + 777, 5 * MiB],
    ['crossing a window boundary, backward overlap', WINDOW_SIZE - MiB + 777, WINDOW_SIZE - MiB, 3 * MiB],
    ['from one window to another', 100, 2 * WINDOW_SIZE + 5, 2 * MiB + 3],
    ['into the short last window across its boundary', WINDOW_SIZE + 10, 2 * WINDOW_SIZE - 1000, 3000],
  ];
  for (const [name, src, dst, len] of cases) {
    const data = pattern(len, src & 0xff);
    pool.write(src, data);
    pool.copyWithin(dst, src, len);
    t.ok(pool.read(dst, len).equals(data), name);
  }
  pool.close();
  t.end();
});
