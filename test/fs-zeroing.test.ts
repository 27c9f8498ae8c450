/** Pre-zeroing: freed blocks are zeroed in the background; no file ever shows another's old bytes. */
import t from 'tap';
import { ROOT_INO } from '../src/fs/index.js';
import { openPool, readAll, ROOT, tempPool } from './helpers/pool.js';

const MiB = 1024 * 1024;

for (const zeroout of [1, 0]) {
  t.test(`zeroout_blocks ${zeroout}: fill, free, reallocate, check every byte`, async (t) => {
    const fsys = openPool(t, tempPool(t, 64));
    fsys.setKnob('zerooutBlocks', zeroout);
    // Fill most of the pool with a recognisable byte, then free it all.
    for (let i = 0; i < 12; i++) {
      const f = fsys.create(ROOT_INO, `old${i}`, 0o644, ROOT);
      fsys.write(f.ino, 0, Buffer.alloc(4 * MiB, 0xa5));
    }
    for (let i = 0; i < 12; i++) fsys.unlink(ROOT_INO, `old${i}`);
    fsys.sync();
    const synced0 = fsys.stats().blocksZeroedSync!;
    if (zeroout === 0) {
      fsys.core.zeroer.drain();
      t.ok(fsys.stats().blocksZeroedBackground! >= 12 * 1024, `background zeroing: ${fsys.stats().blocksZeroedBackground} blocks`);
    }
    // Reallocate with partial, unaligned and sparse writes; nothing may show 0xa5.
    let leaks = 0;
    for (let i = 0; i < 60; i++) {
      const f = fsys.create(ROOT_INO, `new${i}`, 0o644, ROOT);
      fsys.write(f.ino, (i * 5003) % 20000, Buffer.alloc(100 + i * 311, 0x11));
      if (i % 3 === 0) fsys.truncate(f.ino, 300000 + i);
      if (readAll(fsys, f.ino).includes(0xa5)) leaks++;
    }
    t.equal(leaks, 0, 'no file shows an old byte');
    const syncZeroed = fsys.stats().blocksZeroedSync! - synced0;
    if (zeroout === 0) t.equal(syncZeroed, 0, 'with pre-zeroed blocks, nothing was zeroed on the write path');
    else t.ok(syncZeroed > 0, `zeroout 1 zeroes on the write path (${syncZeroed} blocks)`);
  });
}

t.test('without pre-zeroed blocks left, a write zeroes synchronously and says so', async (t) => {
  const fsys = openPool(t, tempPool(t, 32));
  fsys.setKnob('zerooutBlocks', 0);
  fsys.core.zeroer.drain();
  const f = fsys.create(ROOT_INO, 'f', 0o644, ROOT);
  fsys.write(f.ino, 0, Buffer.alloc(2 * MiB, 0x77));
  fsys.unlink(ROOT_INO, 'f');
  fsys.sync();
  fsys.core.zeroer.stop();
  // Use every pre-zeroed block, so the freed (dirty) ones must be taken.
  const filler = fsys.create(ROOT_INO, 'filler', 0o644, ROOT);
  fsys.write(filler.ino, 0, Buffer.alloc(fsys.core.alloc.zeroedFree * 4096, 1));
  const before = fsys.stats().blocksZeroedSync!;
  const g = fsys.create(ROOT_INO, 'g', 0o644, ROOT);
  fsys.write(g.ino, 10, Buffer.from('x'));
  t.ok(fsys.stats().blocksZeroedSync! > before, 'counted as synchronous zeroing');
  t.notOk(readAll(fsys, g.ino).includes(0x77), 'and no old byte shows');
});
