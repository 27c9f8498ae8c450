// A pool bigger than 4 GiB (what one Buffer can hold): one mapping, windowed
// views, and accesses that straddle the 4 GiB line, checked against the file.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Pool, WINDOW_SIZE } from '../src/media/pool.js';

const GiB = 2 ** 30;
const SIZE = 5 * GiB;

t.test('5 GiB sparse pool, I/O across the 4 GiB boundary, both ways', (t) => {
  const dir = t.testdir();
  const p = path.join(dir, 'big.pool');
  const pool = Pool.create(p, SIZE, { sparse: true });
  t.equal(pool.size, SIZE);
  t.ok(fs.statSync(p).blocks * 512 < 64 * 2 ** 20, 'still sparse');

  // every window boundary, and the very end of the pool
  for (let w = 1; w * WINDOW_SIZE < SIZE; w++) {
    const b = Buffer.from(`boundary ${w}`);
    pool.write(w * WINDOW_SIZE - 4, b);
    t.equal(pool.read(w * WINDOW_SIZE - 4, b.length).toString(), `boundary ${w}`);
  }
  pool.fill(SIZE - 3, 3, 0x5a);
  t.same([...pool.read(SIZE - 4, 4)], [0, 0x5a, 0x5a, 0x5a]);

  // 64 KiB straddling 4 GiB, with bytes that differ at every position;
  // `shadow` is what that region must hold after each step
  const at = 4 * GiB - 32 * 1024;
  const shadow = Buffer.alloc(64 * 1024);
  for (let i = 0; i < shadow.length; i++) shadow[i] = (i * 7 + (i >> 8)) & 0xff;
  pool.write(at, shadow);
  pool.persist(at, shadow.length);
  t.ok(pool.read(at, shadow.length).equals(shadow), 'pool reads back its own write');

  const fd = fs.openSync(p, 'r+');
  const fromFile = Buffer.alloc(shadow.length);
  t.equal(fs.readSync(fd, fromFile, 0, fromFile.length, at), shadow.length);
  t.ok(fromFile.equals(shadow), 'the file holds the bytes at the same offsets');

  // the other way: the file is written, the pool reads it across the line
  const other = Buffer.from('written through the file, across 4 GiB');
  const at2 = 4 * GiB - 10;
  fs.writeSync(fd, other, 0, other.length, at2);
  fs.closeSync(fd);
  other.copy(shadow, at2 - at);
  t.equal(pool.read(at2, other.length).toString(), other.toString());
  const into = Buffer.alloc(other.length + 4);
  pool.readInto(at2, into, 2, other.length);
  t.equal(into.subarray(2, 2 + other.length).toString(), other.toString());

  pool.fill(4 * GiB - 2, 4, 0x11);
  shadow.fill(0x11, 4 * GiB - 2 - at, 4 * GiB + 2 - at);
  t.ok(pool.read(at, shadow.length).equals(shadow), 'fill across the line');
  pool.persistAll();
  pool.close();

  // and after a reopen, read-only
  const ro = Pool.open(p, { readOnly: true });
  t.ok(ro.read(at, shadow.length).equals(shadow), 'the region after reopen');
  t.equal(ro.read(3 * GiB - 4, 10).toString(), 'boundary 3');
  t.same([...ro.read(SIZE - 4, 4)], [0, 0x5a, 0x5a, 0x5a]);
  ro.close();
  t.end();
});
