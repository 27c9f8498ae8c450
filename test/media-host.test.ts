// The host's blocks under the pool (src/media/host.ts): a pool is allocated
// on the host unless sparse; a sparse pool gets host blocks in 2 MiB chunks
// before stores; zeroing keeps host blocks; read-only opens map nothing.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { HOST_CHUNK } from '../src/media/host.js';
import { Pool } from '../src/media/pool.js';

const MiB = 2 ** 20;
const allocated = (p: string) => fs.statSync(p).blocks * 512;

t.test('allocated unless sparse; zeroRange keeps the host blocks', (t) => {
  const dir = t.testdir();
  const p = path.join(dir, 'a.pool');
  const pool = Pool.create(p, 16 * MiB);
  t.ok(allocated(p) >= 16 * MiB, `allocated: ${allocated(p)} bytes`);
  t.equal(pool.sparse, false);
  pool.fill(4 * MiB, MiB, 0xab);
  pool.zeroRange(4 * MiB, MiB);
  t.ok(pool.read(4 * MiB, MiB).every((b) => b === 0), 'reads zeros');
  t.ok(allocated(p) >= 16 * MiB, 'no hole made');
  t.ok(pool.zeroMethod === 'zero-range' || pool.zeroMethod === 'store', `method: ${pool.zeroMethod}`);
  pool.reserveHost(0, 16 * MiB); // a no-op
  t.same(pool.unbackedRanges(), []);
  pool.close();
  t.end();
});

t.test('unwrittenRanges: fallocated blocks are unwritten on the host until stored into and made durable', (t) => {
  const p = path.join(t.testdir(), 'u.pool');
  const pool = Pool.create(p, 16 * MiB);
  const fresh = pool.unwrittenRanges(4 * MiB, MiB);
  if (fresh === undefined) {
    t.comment('this host cannot tell (no FIEMAP)');
  } else {
    t.same(fresh, [[4 * MiB, MiB]], 'a new pool: unwritten, clipped to the range asked');
    pool.fill(4 * MiB, 64 * 1024, 0);
    t.same(pool.unwrittenRanges(4 * MiB, MiB), [[4 * MiB, MiB]], 'a store alone converts nothing (the host does at write-back)');
    pool.persistAll();
    const after = pool.unwrittenRanges(4 * MiB, MiB)!;
    t.notOk(after.some(([s, n]) => s < 4 * MiB + 64 * 1024 && s + n > 4 * MiB), `the stored part is written: ${JSON.stringify(after)}`);
    t.ok(after.length > 0, 'the rest is not');
  }
  pool.close();
  t.end();
});

t.test('sparse: reserveHost backs whole 2 MiB chunks, once', (t) => {
  const dir = t.testdir();
  const p = path.join(dir, 's.pool');
  const pool = Pool.create(p, 16 * MiB, { sparse: true });
  pool.close();
  const sp = Pool.open(p);
  t.equal(sp.sparse, true, 'known sparse at open');
  t.equal(allocated(p), 0);
  sp.reserveHost(HOST_CHUNK + 4096, 4096);
  t.equal(allocated(p), HOST_CHUNK, 'the chunk around the block');
  t.same(sp.unbackedRanges(), [[0, HOST_CHUNK], [2 * HOST_CHUNK, 16 * MiB - 2 * HOST_CHUNK]]);
  sp.zeroRange(6 * MiB, 4096);
  t.equal(allocated(p), 2 * HOST_CHUNK, 'zeroing reserves first');
  t.same(sp.hostSpace().allocated, 2 * HOST_CHUNK);
  sp.close();
  t.end();
});

t.test('read-only opens read with pread: no mapping of the pool', (t) => {
  const dir = t.testdir();
  const p = path.join(dir, 'r.pool');
  const w = Pool.create(p, 8 * MiB);
  w.write(5 * MiB, Buffer.from('hello'));
  w.persistAll();
  w.close();
  const r = Pool.open(p, { readOnly: true, lock: 'none' });
  t.equal(r.read(5 * MiB, 5).toString(), 'hello');
  t.notOk(fs.readFileSync('/proc/self/maps', 'utf8').includes(p), 'the pool is not in /proc/self/maps');
  r.close();
  t.throws(() => r.read(0, 1), { code: 'EBADF' });
  t.end();
});
