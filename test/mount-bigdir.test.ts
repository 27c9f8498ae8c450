// A directory with 50 000 entries: create, list, look one up, delete all,
// within the suite's time budget (no linear scans per name: one per create
// would be ~1.25e9 record visits here). 100 000 took twice as long and
// checked the same things.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { freshMount, NODE, run, sh } from './helpers/mount.js';

const N = 50_000;

t.test(`a directory with ${N} entries`, async (t) => {
  const m = await freshMount(t, { size: '1G' }); // one inode per 16 KiB: 65536 inodes
  const dir = join(m.mnt, 'big');
  fs.mkdirSync(dir);
  // Created by a child node process (plain openSync/closeSync in a loop).
  let t0 = Date.now();
  const mk = run(NODE[0]!, [...NODE.slice(1), '-e', `
    const fs = require('fs'), [dir, n] = [process.argv[1], Number(process.argv[2])];
    for (let i = 0; i < n; i++) fs.closeSync(fs.openSync(dir + '/entry-' + i, 'w'));
  `, dir, String(N)], { timeout: 600_000 });
  t.equal(mk.status, 0, mk.summary);
  const createS = (Date.now() - t0) / 1000;
  t.comment(`created ${N} files in ${createS.toFixed(1)} s`);

  t0 = Date.now();
  const ls = sh(`ls ${dir} | wc -l`);
  t.equal(ls.stdout.trim(), String(N), 'ls | wc -l');
  t.comment(`ls of ${N} entries: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.equal(fs.statSync(dir).nlink, 2, 'nlink of a dir of files: 2');

  t0 = Date.now();
  for (const i of [0, 4242, 37777, N - 1]) t.ok(fs.statSync(join(dir, `entry-${i}`)).isFile(), `stat entry-${i}`);
  const s = sh(`stat -c %s ${dir}/entry-${N - 2} && ls ${dir}/entry-4* | wc -l`);
  t.equal(s.stdout.trim().split('\n').join(' '), '0 11111', 'stat(1) of one entry; a glob of 11111');
  t.ok(Date.now() - t0 < 30_000, 'lookups in a big dir are quick');

  // lookups of missing names
  t0 = Date.now();
  let missing = 0;
  for (let i = 0; i < 2000; i++) if (!fs.existsSync(join(dir, `nope-${i}`))) missing++;
  t.equal(missing, 2000);
  t.comment(`2000 negative lookups: ${Date.now() - t0} ms`);

  t0 = Date.now();
  const rm = run('find', [dir, '-mindepth', '1', '-delete'], { timeout: 600_000 });
  t.equal(rm.status, 0, rm.summary);
  t.comment(`deleted ${N} entries in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  t.same(fs.readdirSync(dir), [], 'empty again');
  fs.rmdirSync(dir);
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
});
