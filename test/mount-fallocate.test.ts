// fallocate(2) through the mount: the util-linux tool (allocate, --keep-size,
// --punch-hole, --zero-range, bad input), the native shim's call (EBADF,
// EINVAL from the kernel), ENOSPC that leaves df as it was, fsck and a
// remount; then the library: MAP_DAXVM of a fallocated file comes from the
// pool (attached or stitched, not vanilla), and what is written through it
// persists after msync and a remount.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { mmap, MAP_DAXVM } from '../src/lib/index.js';
import { native } from '../src/media/native.js';
import { setKnob, stats } from './helpers/control.js';
import { pattern, tablesMount } from './helpers/lib.js';
import { df, fsck, mountPool, run, sleep, type Mounted } from './helpers/mount.js';

const MiB = 1024 * 1024;

function nativeCode(fn: () => void): string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

const isZero = (b: Buffer): boolean => b.equals(Buffer.alloc(b.length));

t.test('fallocate(1) and fallocate(2) on the mount, fsck, remount, MAP_DAXVM', async (t) => {
  const fm = await tablesMount(t, '128M');
  let m: Mounted = fm;
  const at = (name: string): string => join(m.mnt, name);

  // Allocate: size, st_blocks, zeros.
  let r = run('fallocate', ['-l', '8M', at('f')]);
  t.equal(r.status, 0, `fallocate -l 8M\n${r.summary}`);
  let st = fs.statSync(at('f'));
  t.equal(st.size, 8 * MiB, 'size 8 MiB');
  t.equal(st.blocks, 8 * MiB / 512, 'st_blocks: 8 MiB allocated');
  t.ok(isZero(fs.readFileSync(at('f'))), 'reads zeros');

  // --keep-size: blocks, no size.
  fs.writeFileSync(at('k'), '');
  r = run('fallocate', ['--keep-size', '-l', '3M', at('k')]);
  t.equal(r.status, 0, `fallocate --keep-size\n${r.summary}`);
  st = fs.statSync(at('k'));
  t.equal(st.size, 0, '--keep-size: size stays 0');
  t.equal(st.blocks, 3 * MiB / 512, 'and the blocks are there');

  // --punch-hole: a whole block freed, partial blocks zeroed, size kept.
  const data = pattern(4 * 4096, 5);
  fs.writeFileSync(at('p'), data);
  r = run('fallocate', ['--punch-hole', '-o', '100', '-l', String(4096 + 8000), at('p')]);
  t.equal(r.status, 0, `fallocate --punch-hole\n${r.summary}`);
  const want = Buffer.from(data);
  want.fill(0, 100, 100 + 4096 + 8000);
  t.ok(fs.readFileSync(at('p')).equals(want), 'the range reads zeros, the rest as it was');
  st = fs.statSync(at('p'));
  t.equal(st.size, data.length, 'size kept');
  t.equal(st.blocks, 3 * 8, 'the one whole block in the range is freed');

  // --zero-range over data.
  r = run('fallocate', ['--zero-range', '-o', '0', '-l', '50', at('p')]);
  t.equal(r.status, 0, `fallocate --zero-range\n${r.summary}`);
  want.fill(0, 0, 50);
  t.ok(fs.readFileSync(at('p')).equals(want), '--zero-range zeroes the bytes');

  // Bad input: errno as ext4 (or the kernel's VFS, before us).
  r = run('fallocate', ['--collapse-range', '-o', '0', '-l', '4096', at('f')]);
  t.match(r.stderr, /Operation not supported/, 'collapse range: EOPNOTSUPP');
  r = run('fallocate', ['--insert-range', '-o', '0', '-l', '4096', at('f')]);
  t.match(r.stderr, /Operation not supported/, 'insert range: EOPNOTSUPP');
  r = run('fallocate', ['-o', '16T', '-l', '4096', at('f')]);
  t.match(r.stderr, /File too large/, 'past the largest file (16 TiB - 4 KiB): EFBIG');
  const ro = fs.openSync(at('f'), 'r');
  t.equal(nativeCode(() => native.fallocate(ro, 0, 0, 4096)), 'EBADF', 'a file not open for writing: EBADF');
  fs.closeSync(ro);
  const rw = fs.openSync(at('f'), 'r+');
  t.equal(nativeCode(() => native.fallocate(rw, 0, -1, 4096)), 'EINVAL', 'offset < 0: EINVAL');
  t.equal(nativeCode(() => native.fallocate(rw, 0, 0, 0)), 'EINVAL', 'length 0: EINVAL');
  t.equal(nativeCode(() => native.fallocate(rw, 0x2, 0, 4096)), 'EOPNOTSUPP', 'punch without keep-size: EOPNOTSUPP');
  fs.closeSync(rw);

  // ENOSPC: nothing allocated, df as before.
  const before = df(m.mnt);
  r = run('fallocate', ['-l', '1G', at('big')]);
  t.match(r.stderr, /No space left on device/, 'more than the pool: ENOSPC');
  t.equal(fs.statSync(at('big')).size, 0, 'the file stays empty');
  t.same(df(m.mnt), before, 'df as before');
  fs.unlinkSync(at('big'));

  // The library: a fallocated file maps from the pool; writes through it persist.
  setKnob(m.mnt, 'zeroout_blocks', 0); // pre-zeroed blocks, as DaxVM's append path
  for (let i = 0; i < 100 && stats(m.mnt).preZeroQueueBlocks! > 0; i++) await sleep(50);
  const synced = stats(m.mnt).blocksZeroedSync!;
  const fd = fs.openSync(at('m'), 'w+');
  native.fallocate(fd, 0, 0, 4 * MiB);
  t.equal(stats(m.mnt).blocksZeroedSync, synced, 'zeroout_blocks 0: pre-zeroed blocks, nothing zeroed on the request path');
  const map = mmap(at('m'), { prot: 'rw', flags: MAP_DAXVM });
  t.ok(map.mode === 'attached' || map.mode === 'stitched', `MAP_DAXVM from the pool: ${map.mode}${map.fallbackReason ? ` (${map.fallbackReason})` : ''}`);
  t.ok(isZero(map.buffer), 'reads zeros through the mapping');
  const bytes = pattern(4 * MiB, 11);
  bytes.copy(map.buffer);
  map.msync();
  map.unmap();
  fs.closeSync(fd);
  const mf = mmap(at('f'), { flags: MAP_DAXVM });
  t.not(mf.mode, 'vanilla', `the file fallocate(1) made maps from the pool too (${mf.mode})`);
  mf.unmap();

  let stop = await m.stop();
  t.equal(stop.code, 0, 'clean unmount');
  const ck = fsck(m.pool);
  t.equal(ck.status, 0, `fsck clean\n${ck.summary}`);
  m = await mountPool(t, m.pool);
  t.equal(fs.statSync(at('f')).size, 8 * MiB, 'after a remount: the size');
  t.equal(fs.statSync(at('k')).blocks, 3 * MiB / 512, 'the preallocated blocks past the end');
  t.ok(fs.readFileSync(at('p')).equals(want), 'the punched file');
  t.ok(fs.readFileSync(at('m')).equals(bytes), 'what was written through the mapping');
  stop = await m.stop();
  t.equal(stop.code, 0);
});
