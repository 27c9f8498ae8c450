// Page tables and the library on a huge sparse file (16 TiB - 4 KiB, ext4's
// largest with 4 KiB blocks): the table is built for the few blocks there
// are, user.daxvm.ppt answers, mmap maps ranges near the end or refuses with
// a clear error (never a SIGBUS), and a Buffer path reaches a file whose
// name is not UTF-8.
import t from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { mmap, MAP_DAXVM } from '../src/lib/index.js';
import { checkDaemon, under } from './helpers/hostile.js';
import { PAGE, pattern, tablesMount } from './helpers/lib.js';
import { fsck, mountPool, run } from './helpers/mount.js';

const TiB = 2 ** 40;
const MAX = 2 ** 44 - 4096;

t.test('page tables and mmap near the end of a 16 TiB sparse file', async (t) => {
  const m = await tablesMount(t, '256M');
  const f = join(m.mnt, 'huge');
  const fd = fs.openSync(f, 'w');
  const tail = pattern(PAGE, 3);
  fs.writeSync(fd, Buffer.from('one TiB'), 0, 7, TiB);
  fs.writeSync(fd, tail, 0, PAGE, MAX - PAGE);
  fs.closeSync(fd);

  const ppt = run('getfattr', ['--only-values', '-n', 'user.daxvm.ppt', f]);
  t.equal(ppt.status, 0, ppt.summary);
  const fields = Object.fromEntries(ppt.stdout.trim().split(' ').map((kv) => kv.split('=')));
  t.equal(Number(fields.size), MAX, `user.daxvm.ppt answers: ${ppt.stdout.trim()}`);
  t.equal(Number(fields.level), 4, 'a four-level table: 16 TiB needs the level above 512 GiB');
  t.ok(Number(fields.root) > 0 && Number(fields.nodes) <= 12, 'a few nodes for two blocks, not a table for 16 TiB');

  const end = mmap(f, { flags: MAP_DAXVM, offset: MAX - PAGE, length: PAGE });
  t.equal(end.mode, 'attached', 'the last page maps from the pool');
  t.ok(end.buffer.equals(tail), 'its bytes');
  end.unmap();
  const one = mmap(f, { flags: MAP_DAXVM, offset: TiB, length: PAGE });
  t.equal(one.mode, 'attached');
  t.equal(one.buffer.toString('latin1', 0, 7), 'one TiB', 'the page at 1 TiB');
  one.unmap();
  const holes = mmap(f, { flags: MAP_DAXVM, offset: MAX - 2 * 2 ** 20, length: 2 * 2 ** 20 });
  t.equal(holes.mode, 'vanilla', 'a range of holes near the end: through the mount');
  t.match(holes.fallbackReason, /no block/);
  t.ok(holes.buffer.subarray(0, PAGE).equals(Buffer.alloc(PAGE)), 'a hole reads zeros');
  t.ok(holes.buffer.subarray(holes.length - PAGE).equals(tail), 'and the last page its bytes');
  holes.unmap();

  t.throws(() => mmap(f, { flags: MAP_DAXVM, offset: MAX, length: PAGE }), { code: 'EINVAL', message: /at or past the end of the file/ },
    'a range that starts at the end: EINVAL (its first touch would be SIGBUS)');
  t.throws(() => mmap(f, { flags: MAP_DAXVM, offset: 2 * MAX, length: PAGE }), { code: 'EINVAL', message: /past the end/ }, 'or past it');
  t.throws(() => mmap(f, { flags: MAP_DAXVM }), { code: 'EINVAL', message: /exceeds a Buffer/ }, 'the whole file: more than a Buffer holds');

  // A name that is not UTF-8, reached by a Buffer path.
  const raw = under(m.mnt, Buffer.from([0xff, 0x80, 0x2d]));
  const data = pattern(8192, 5);
  fs.writeFileSync(raw, data);
  const r = mmap(raw, { flags: MAP_DAXVM });
  t.ok(r.buffer.equals(data), `a Buffer path of raw bytes maps (${r.mode})`);
  r.unmap();
  checkDaemon(t, m, 'after mmap of a huge file');

  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const ck = fsck(m.pool);
  t.equal(ck.status, 0, `fsck clean with the table of a 16 TiB file\n${ck.summary}`);
  const again = await mountPool(t, m.pool);
  const f2 = join(again.mnt, 'huge');
  t.equal(fs.statSync(f2).size, MAX, 'the size survives unmount and mount');
  const m2 = mmap(f2, { flags: MAP_DAXVM, offset: MAX - PAGE, length: PAGE });
  t.equal(m2.mode, 'attached', 'and the table');
  t.ok(m2.buffer.equals(tail));
  m2.unmap();
  const st2 = await again.stop();
  t.equal(st2.code, 0);
});
