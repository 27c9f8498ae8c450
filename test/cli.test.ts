// The CLI as a user meets it: usage and exit code 2 on wrong arguments, mkfs
// makes a sparse pool and refuses to overwrite one without --force, info.
import t from 'tap';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { cli, makePool, mountPool, tempDir } from './helpers/mount.js';

function sha(path: string): string {
  return createHash('sha256').update(fs.readFileSync(path)).digest('hex');
}

t.test('wrong arguments: usage and exit code 2', async (t) => {
  const dir = tempDir(t);
  const bad: string[][] = [
    [],
    ['frobnicate'],
    ['mkfs'],
    ['mkfs', join(dir, 'p'), '--size', 'banana'],
    ['mkfs', join(dir, 'p'), '--no-such-flag'],
    ['mount', '--no-such-flag'],
    ['umount'],
    ['fsck'],
    ['fsck', join(dir, 'p'), 'extra', 'args'],
    ['info'],
  ];
  for (const args of bad) {
    const r = cli(args);
    t.equal(r.status, 2, `daxvm ${args.join(' ')}: exit 2\n${r.summary}`);
    t.match(r.stderr + r.stdout, /usage/i, `daxvm ${args.join(' ')}: a usage message`);
    t.notMatch(r.stderr, /^\s+at .*:\d+:\d+\)?$/m, `daxvm ${args.join(' ')}: no stack trace`);
  }
  t.notOk(fs.existsSync(join(dir, 'p')), 'no pool made by a rejected mkfs');
  const h = cli(['--help']);
  t.equal(h.status, 0, h.summary);
  for (const cmd of ['mkfs', 'mount', 'umount', 'fsck', 'info']) t.match(h.stdout, new RegExp(`\\b${cmd}\\b`), `--help lists ${cmd}`);
});

t.test('mkfs: pool of the size asked, allocated on the host (--sparse: not); refuses to overwrite without --force', async (t) => {
  const { pool } = makePool(t, { size: '256M' });
  const st = fs.statSync(pool);
  t.equal(st.size, 256 * 1024 * 1024, 'pool size');
  t.ok(st.blocks * 512 >= 256 * 1024 * 1024, `allocated: ${st.blocks * 512} bytes`);
  const sparse = join(tempDir(t), 'sparse.pool');
  t.equal(cli(['mkfs', sparse, '--size', '256M', '--sparse']).status, 0);
  t.ok(fs.statSync(sparse).blocks * 512 < 64 * 1024 * 1024, `--sparse: ${fs.statSync(sparse).blocks * 512} bytes allocated`);
  const before = sha(pool);
  let r = cli(['mkfs', pool, '--size', '128M']);
  t.not(r.status, 0, `refuses to overwrite\n${r.summary}`);
  t.match(r.stderr + r.stdout, /--force/, 'says how to force it');
  t.equal(sha(pool), before, 'pool untouched');
  // any existing file is protected, not only pools
  const other = join(tempDir(t), 'precious.txt');
  fs.writeFileSync(other, 'do not overwrite me');
  r = cli(['mkfs', other, '--size', '64M']);
  t.not(r.status, 0, `refuses an existing non-pool file\n${r.summary}`);
  t.equal(fs.readFileSync(other, 'utf8'), 'do not overwrite me');

  // write something, then mkfs --force gives an empty file system
  const m = await mountPool(t, pool);
  fs.writeFileSync(join(m.mnt, 'old'), 'old');
  // Mounted writable, the journal may hold commits an older daxvm could not check: info names the flag.
  r = cli(['info', m.mnt]);
  t.match(r.stdout, /incompatible features\s+VOUCHING_JOURNAL/, `info of a mounted pool names its incompatible feature\n${r.summary}`);
  await m.stop();
  r = cli(['mkfs', pool, '--size', '128M', '--force']);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(pool).size, 128 * 1024 * 1024, 'new size');
  const m2 = await mountPool(t, pool);
  t.same(fs.readdirSync(m2.mnt).filter((n) => n !== '.daxvm' && n !== 'lost+found'), [], 'empty after --force');
  await m2.stop();
});

t.test('fsck and info on a fresh pool', async (t) => {
  const { pool } = makePool(t, { size: '64M' });
  let r = cli(['fsck', pool]);
  t.equal(r.status, 0, `fsck of a fresh pool: exit 0\n${r.summary}`);
  r = cli(['fsck', pool, '--json']);
  t.equal(r.status, 0, r.summary);
  t.doesNotThrow(() => JSON.parse(r.stdout), 'fsck --json prints JSON');
  r = cli(['info', pool]);
  t.equal(r.status, 0, r.summary);
  t.match(r.stdout, /64(\.0)? ?Mi?B|67108864/, 'info shows the size');
  r = cli(['info', pool, '--json']);
  t.equal(r.status, 0, r.summary);
  let info: unknown;
  t.doesNotThrow(() => (info = JSON.parse(r.stdout)), 'info --json prints JSON');
  t.ok(info && typeof info === 'object', 'an object');
  t.same((info as { incompatFeatures?: unknown }).incompatFeatures, [], 'a clean pool: no incompatible feature set');
  r = cli(['fsck', join(tempDir(t), 'missing.pool')]);
  t.equal(r.status, 8, `fsck of a missing file: 8 (operational error)\n${r.summary}`);
});

t.test('daxvm umount of something not mounted fails cleanly', async (t) => {
  const dir = tempDir(t);
  const r = cli(['umount', dir]);
  t.not(r.status, 0, r.summary);
  t.not(r.status, null);
  t.notMatch(r.stderr, /^\s+at .*:\d+:\d+\)?$/m, 'no stack trace');
  const v = cli(['--version']);
  t.equal(v.status, 0, v.summary);
});
