// The `.daxvm/` control directory through the mount, with real tools: what
// `ls` and `cat` show, `echo N >` on the knobs (bad values: EINVAL and nothing
// changes), read-only files, names that cannot change, values that persist
// across remounts, a reader's snapshot, and `zeroout_blocks 0` (background
// pre-zeroing: new files never show a deleted file's bytes).
import t from 'tap';
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { errCode, freshMount, fsck, makePool, mountPool, run, sh, sleep, tempDir } from './helpers/mount.js';
import { cat, ctlDir, echoTo, knob, occupied, setKnob, stats } from './helpers/control.js';

const KNOBS = ['msync', 'page_tables_on', 'zeroout_blocks', 'zombie_max_pages'];
const READ_ONLY = ['kbytes_occupied', 'pool', 'stats'];
const ALL = [...KNOBS, ...READ_ONLY].sort();

t.test('the control directory: listing, modes, sizes, contents', async (t) => {
  const m = await freshMount(t);
  const M = m.mnt;
  const D = ctlDir(M);

  const lsa = run('ls', ['-a', M]);
  t.same(lsa.stdout.split('\n').filter(Boolean), ['.', '..', '.daxvm'], 'ls -a shows .daxvm');
  t.equal(run('ls', [M]).stdout, '', 'ls hides it (a dot name)');
  t.same(run('ls', ['-a', D]).stdout.split('\n').filter(Boolean), ['.', '..', ...ALL], 'ls -a .daxvm');
  const found = run('find', [M, '-mindepth', '1']).stdout.split('\n').filter(Boolean).sort();
  t.same(found, [D, ...ALL.map((n) => join(D, n))], 'find sees the control files');

  // Root nlink counts the control directory like any subdirectory.
  fs.mkdirSync(join(M, 'sub'));
  const dirs = run('find', [M, '-maxdepth', '1', '-type', 'd']).stdout.split('\n').filter(Boolean).length;
  t.equal(fs.statSync(M).nlink, dirs + 1, `root nlink = 2 + subdirectories (.daxvm and sub)`);

  const st = run('stat', ['-c', '%n %F %a', D, ...ALL.map((n) => join(D, n))]);
  t.equal(st.status, 0, st.summary);
  // `pool` is readable as the pool file (0600 here) is: 0400 (see mount-perms).
  const want = [`${D} directory 555`, ...ALL.map((n) => `${join(D, n)} regular file ${KNOBS.includes(n) ? 644 : n === 'pool' ? 400 : 444}`)];
  t.same(st.stdout.trim().split('\n'), want, 'types and modes');

  t.equal(cat(join(D, 'page_tables_on')), '0\n', 'page_tables_on defaults to 0');
  t.equal(cat(join(D, 'msync')), '1\n', 'msync defaults to 1');
  t.equal(cat(join(D, 'zeroout_blocks')), '1\n', 'zeroout_blocks defaults to 1');
  t.equal(cat(join(D, 'zombie_max_pages')), '33\n', 'zombie_max_pages defaults to 33');
  t.equal(cat(join(D, 'pool')), fs.realpathSync(m.pool) + '\n', 'pool: the pool file\'s absolute path and a newline');
  t.same(occupied(M), { pmem: 0, dram: 0 }, 'kbytes_occupied: no tables yet');
  const s = JSON.parse(cat(join(D, 'stats'))) as Record<string, unknown>;
  for (const k of ['tablesBuilt', 'tableNodes', 'hugePmdEntries', 'pteEntries', 'blocksZeroedSync', 'blocksZeroedBackground', 'pmemKB', 'dramKB']) {
    t.type(s[k], 'number', `stats has ${k}`);
  }
  const { requests, ...counters } = s as { requests: Record<string, number> } & Record<string, unknown>;
  t.ok(Object.values(counters).every((v) => typeof v === 'number'), 'stats: numbers only, and');
  t.ok(requests.total! > 0 && requests.LOOKUP! > 0 && Object.values(requests).every((v) => typeof v === 'number'),
    `stats: requests by kernel opcode name, and their total: ${JSON.stringify(requests)}`);

  // st_size is the content's length. (stats changes with every request: each read is valid JSON.)
  t.ok(JSON.parse(run('dd', [`if=${join(D, 'stats')}`, 'bs=1', 'status=none']).stdout), 'stats: dd bs=1 reads JSON');
  for (const n of ALL.filter((x) => x !== 'stats')) {
    const p = join(D, n);
    const size = Number(run('stat', ['-c', '%s', p]).stdout.trim());
    const text = cat(p);
    t.equal(size, Buffer.byteLength(text), `${n}: st_size ${size} = content length`);
    const bytewise = run('dd', [`if=${p}`, 'bs=1', 'status=none']);
    t.equal(bytewise.stdout, text, `${n}: dd bs=1 reads the same`);
  }
  t.equal(fs.readFileSync(join(D, 'pool'), 'utf8'), fs.realpathSync(m.pool) + '\n', 'readFileSync (fstat, then read st_size bytes)');

  // xattrs: none, and none can be set.
  const ga = run('getfattr', ['-d', '--absolute-names', join(D, 'msync')]);
  t.equal(ga.stdout, '', 'getfattr -d shows nothing');
  const sa = run('setfattr', ['-n', 'user.x', '-v', '1', join(D, 'msync')]);
  t.match(sa.stderr, /Operation not permitted/, 'setfattr: EPERM');
  await m.stop();
});

t.test('knob round trip; bad values get EINVAL and change nothing; values persist', async (t) => {
  const p = makePool(t);
  const m1 = await mountPool(t, p);
  const M = m1.mnt;
  const D = ctlDir(M);

  let r = echoTo(join(D, 'page_tables_on'), '1');
  t.equal(r.status, 0, r.summary);
  t.equal(knob(M, 'page_tables_on'), '1\n', 'echo 1 > page_tables_on; cat: 1');

  for (const bad of ['banana', '2', '-1', '1.5', '0x1', '"1 1"', "''"]) {
    r = echoTo(join(D, 'page_tables_on'), bad);
    t.not(r.status, 0, `echo ${bad} > page_tables_on fails`);
    t.match(r.stderr, /Invalid argument/, `echo ${bad}: EINVAL`);
    t.equal(knob(M, 'page_tables_on'), '1\n', `after echo ${bad}: still 1`);
  }
  r = echoTo(join(D, 'zombie_max_pages'), '0');
  t.match(r.stderr, /Invalid argument/, 'zombie_max_pages 0: EINVAL');
  r = echoTo(join(D, 'zombie_max_pages'), String(2 ** 20 + 1));
  t.match(r.stderr, /Invalid argument/, 'zombie_max_pages past 2^20: EINVAL');
  t.equal(knob(M, 'zombie_max_pages'), '33\n', 'zombie_max_pages unchanged');

  r = sh(`printf 77 > ${D}/zombie_max_pages`);
  t.equal(r.status, 0, `printf without a newline works\n${r.summary}`);
  t.equal(knob(M, 'zombie_max_pages'), '77\n');
  r = sh(`echo '  0  ' > ${D}/msync`);
  t.equal(r.status, 0, `white space around the value is fine\n${r.summary}`);
  setKnob(M, 'zeroout_blocks', 0);
  r = sh(`: > ${D}/msync && touch ${D}/msync`);
  t.equal(r.status, 0, `truncating and touching a knob changes nothing\n${r.summary}`);
  t.equal(knob(M, 'msync'), '0\n', 'msync still 0');

  // Read-only files: EACCES (root bypasses the 0444 mode; we refuse as the kernel would for others).
  const poolText = cat(join(D, 'pool'));
  for (const n of READ_ONLY) {
    r = echoTo(join(D, n), '1');
    t.match(r.stderr, /Permission denied/, `echo 1 > ${n}: EACCES`);
    r = run('truncate', ['-s', '0', join(D, n)]);
    t.match(r.stderr, /Permission denied/, `truncate ${n}: EACCES`);
  }
  t.equal(cat(join(D, 'pool')), poolText, 'pool unchanged');

  // The control directory's names are fixed; the name .daxvm is taken.
  fs.writeFileSync(join(M, 'file'), 'x');
  fs.mkdirSync(join(M, 'dir'));
  t.equal(errCode(() => fs.writeFileSync(join(D, 'new'), 'x')), 'EPERM', 'create in .daxvm: EPERM');
  t.equal(errCode(() => fs.mkdirSync(join(D, 'sub'))), 'EPERM', 'mkdir in .daxvm: EPERM');
  t.equal(errCode(() => fs.symlinkSync('x', join(D, 'ln'))), 'EPERM', 'symlink in .daxvm: EPERM');
  t.equal(errCode(() => fs.unlinkSync(join(D, 'stats'))), 'EPERM', 'unlink: EPERM');
  t.equal(errCode(() => fs.renameSync(join(D, 'stats'), join(D, 's2'))), 'EPERM', 'rename within: EPERM');
  t.equal(errCode(() => fs.renameSync(join(D, 'msync'), join(M, 'msync'))), 'EPERM', 'rename out: EPERM');
  t.equal(errCode(() => fs.renameSync(join(M, 'file'), join(D, 'file'))), 'EPERM', 'rename in: EPERM');
  t.equal(errCode(() => fs.renameSync(D, join(M, 'ctl'))), 'EPERM', 'rename the directory: EPERM');
  t.equal(errCode(() => fs.rmdirSync(D)), 'EPERM', 'rmdir .daxvm: EPERM');
  t.equal(errCode(() => fs.linkSync(join(D, 'stats'), join(M, 'st'))), 'EPERM', 'hard link of a control file: EPERM');
  t.equal(errCode(() => fs.linkSync(join(M, 'file'), join(D, 'f'))), 'EPERM', 'hard link into .daxvm: EPERM');
  t.equal(errCode(() => fs.chmodSync(join(D, 'msync'), 0o600)), 'EPERM', 'chmod: EPERM');
  t.equal(errCode(() => fs.chownSync(join(D, 'msync'), 1000, 1000)), 'EPERM', 'chown: EPERM');
  t.equal(errCode(() => fs.mkdirSync(join(M, '.daxvm'))), 'EEXIST', 'mkdir .daxvm: EEXIST');
  t.equal(errCode(() => fs.symlinkSync('x', join(M, '.daxvm'))), 'EEXIST', 'symlink named .daxvm: EEXIST');
  t.equal(errCode(() => fs.writeFileSync(join(M, '.daxvm'), 'x', { flag: 'wx' })), 'EEXIST', 'O_CREAT|O_EXCL .daxvm: EEXIST');
  t.match(errCode(() => fs.renameSync(join(M, 'dir'), join(M, '.daxvm'))), /^(EEXIST|ENOTEMPTY)$/, 'rename a directory onto .daxvm: refused');
  t.ok(fs.statSync(join(M, 'dir')).isDirectory() && fs.readFileSync(join(M, 'file'), 'utf8') === 'x', 'nothing moved');
  t.same(fs.readdirSync(D).sort(), ALL, 'the control files are all still there');

  const before = Object.fromEntries(KNOBS.map((n) => [n, knob(M, n)]));
  t.same(before, { msync: '0\n', page_tables_on: '1\n', zeroout_blocks: '0\n', zombie_max_pages: '77\n' });
  const st = await m1.stop();
  t.equal(st.code, 0, 'clean unmount');
  const f = fsck(p.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
  const m2 = await mountPool(t, p);
  t.same(Object.fromEntries(KNOBS.map((n) => [n, knob(m2.mnt, n)])), before, 'every knob survives a remount');
  setKnob(m2.mnt, 'page_tables_on', 0);
  await m2.kill();
  const m3 = await mountPool(t, p);
  t.equal(knob(m3.mnt, 'page_tables_on'), '0\n', 'a knob set just before SIGKILL survives it');
  await m3.stop();
});

t.test('an open reader keeps the content it opened; cat sees the new value', async (t) => {
  const m = await freshMount(t);
  const p = join(ctlDir(m.mnt), 'zombie_max_pages');
  setKnob(m.mnt, 'zombie_max_pages', 123456);
  const fd = fs.openSync(p, 'r');
  t.teardown(() => { try { fs.closeSync(fd); } catch { /* closed */ } });
  setKnob(m.mnt, 'zombie_max_pages', 7); // shorter content now
  t.equal(cat(p), '7\n', 'cat: the new value');
  const buf = Buffer.alloc(4096);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  t.equal(buf.subarray(0, n).toString(), '123456\n', 'the earlier fd reads its whole snapshot, not cut at the new size');
  t.equal(fs.fstatSync(fd).size, 7, 'stat while it is open: never less than its snapshot');
  fs.closeSync(fd);
  t.equal(fs.statSync(p).size, 2, 'stat after close: the current size');
  await m.stop();
});

t.test('zeroout_blocks 0: freed blocks are zeroed in the background; new files never show old bytes', async (t) => {
  const m = await freshMount(t, { size: '128M' });
  const M = m.mnt;
  const host = tempDir(t);
  setKnob(M, 'zeroout_blocks', 0);
  t.equal(knob(M, 'zeroout_blocks'), '0\n');

  // Fill a good part of the pool with non-zero bytes, then free it.
  const junk = randomBytes(8 * 1024 * 1024);
  for (let k = 0; k < junk.length; k++) if (junk[k] === 0) junk[k] = 0xff;
  fs.writeFileSync(join(host, 'junk'), junk);
  let r = sh(`for i in $(seq 1 8); do cp ${host}/junk ${M}/junk$i; done`, { timeout: 600_000 });
  t.equal(r.status, 0, r.summary);
  for (let i = 1; i <= 200; i++) fs.writeFileSync(join(M, `small${i}`), junk.subarray(0, i * 500));
  r = sh(`sync ${M}/junk1 && rm ${M}/junk* ${M}/small*`);
  t.equal(r.status, 0, r.summary);

  /** `dd of=F bs=1 seek=AT conv=notrunc`: open without O_TRUNC, then one byte per write. */
  const poke = (f: string, at: number, bytes: Buffer) => {
    const fd = fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
    try {
      for (let k = 0; k < bytes.length; k++) fs.writeSync(fd, bytes, k, 1, at + k);
    } finally {
      fs.closeSync(fd);
    }
  };
  /**
   * Files that leave unwritten ranges inside allocated blocks and past holes; built the same way on the host.
   * The syscalls printf, dd and truncate made, from this process (the daemon is a child), not 120 process starts a build.
   */
  const build = (dir: string, round: number) => {
    for (let i = 1; i <= 40; i++) {
      const f = join(dir, `f${round}_${i}`);
      fs.writeFileSync(f, `head${String(i).padStart(5, '0')}`);
      poke(f, i * 5003, Buffer.from('mid'));
      fs.truncateSync(f, i * 37000 + 123);
      poke(f, i * 37000 + 100, Buffer.from('tail'));
    }
    const g = join(dir, `g${round}`);
    fs.closeSync(fs.openSync(g, 'a'));
    fs.truncateSync(g, 3 * 1024 * 1024);
    const fd = fs.openSync(g, 'r+');
    fs.writeSync(fd, junk, 0, 4096, 100 * 4096);
    fs.closeSync(fd);
    poke(g, 2 * 1024 * 1024 + 17, Buffer.from('x'));
  };
  const compare = (round: number) => {
    const want = join(host, `want${round}`);
    fs.mkdirSync(want);
    build(want, round);
    build(M, round);
    const wrong = fs.readdirSync(want).flatMap((f) => {
      const a = fs.readFileSync(join(want, f));
      const b = fs.readFileSync(join(M, f));
      if (a.equals(b)) return [];
      let at = 0;
      while (at < a.length && at < b.length && a[at] === b[at]) at++;
      return [`${f}: differs at byte ${at} (sizes ${a.length}, ${b.length})`];
    });
    t.same(wrong, [], `round ${round}: every byte as written, zeros elsewhere`);
  };

  // Right after the deletes: whatever the background zeroer got to, allocation must not expose old bytes.
  compare(1);
  // Let the background zeroer work, then allocate again: pre-zeroed blocks are taken first.
  const end = Date.now() + 120_000;
  let s = stats(M);
  while (s.blocksZeroedBackground! < 1000 && Date.now() < end) {
    await sleep(200);
    s = stats(M);
  }
  t.ok(s.blocksZeroedBackground! >= 1000, `stats counts background zeroing: ${s.blocksZeroedBackground} blocks`);
  t.ok(s.preZeroedFreeBlocks! > 0, `pre-zeroed free blocks: ${s.preZeroedFreeBlocks}`);
  const syncBefore = s.blocksZeroedSync!;
  compare(2);
  r = sh(`rm ${M}/f1_* ${M}/g1 && for i in $(seq 1 8); do cp ${host}/junk ${M}/again$i; done && rm ${M}/again*`);
  t.equal(r.status, 0, r.summary);
  compare(3);
  s = stats(M);
  t.type(s.blocksZeroedSync, 'number', `blocks zeroed synchronously: ${syncBefore} -> ${s.blocksZeroedSync}`);
  t.equal(occupied(M).dram, 0, 'DRAM: page_tables_on is 0 here, so there are no tables to copy');

  const st = await m.stop();
  t.equal(st.code, 0);
  const f = fsck(m.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});
