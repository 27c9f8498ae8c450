// Persistent page tables through the mount, seen with real tools: occupancy
// (`.daxvm/kbytes_occupied`) and `getfattr -n user.daxvm.ppt` for files of
// known size and alignment, tables that follow truncate, survive a remount
// and a SIGKILL of the daemon, and a knob flipped under open files.
import t from 'tap';
import type { Test } from 'tap';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { lineChild } from './helpers/child.js';
import { errCode, freshMount, fsck, makePool, mountPool, run, sh, tempDir } from './helpers/mount.js';
import { ctlDir, knob, occupied, ppt, setKnob, stats } from './helpers/control.js';

const MiB = 1024 * 1024;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('user.daxvm.ppt: computed, read-only, not listed', async (t) => {
  const m = await freshMount(t);
  const M = m.mnt;
  const f = join(M, 'f');
  fs.writeFileSync(f, 'hello');
  fs.mkdirSync(join(M, 'd'));
  const off = ppt(f);
  t.match(off, { ino: fs.statSync(f).ino, root: 0, level: 0, nodes: 0, size: 5 }, `tables off: no root (${JSON.stringify(off)})`);
  t.ok(off.gen >= 1, 'a generation');

  setKnob(M, 'page_tables_on', 1);
  const on = ppt(f);
  t.ok(on.root > 0 && on.level === 1 && on.nodes === 1, `tables on: a PTE root (${JSON.stringify(on)})`);
  t.equal(on.ino, off.ino);

  let r = run('getfattr', ['-n', 'user.daxvm.ppt', join(M, 'd')]);
  t.match(r.stderr, /No such attribute/, 'a directory has none');
  r = run('setfattr', ['-n', 'user.daxvm.ppt', '-v', 'root=1', f]);
  t.match(r.stderr, /Operation not permitted/, 'setfattr: EPERM');
  r = run('setfattr', ['-x', 'user.daxvm.ppt', f]);
  t.match(r.stderr, /Operation not permitted/, 'setfattr -x: EPERM');
  r = run('setfattr', ['-n', 'user.daxvm.ppt', '-v', 'x', join(M, 'd')]);
  t.match(r.stderr, /Operation not permitted/, 'reserved on directories too');
  t.same(ppt(f), { ...on, seq: ppt(f).seq }, 'unchanged');

  r = run('setfattr', ['-n', 'user.mine', '-v', 'v', f]);
  t.equal(r.status, 0, r.summary);
  r = run('getfattr', ['-d', '--absolute-names', f]);
  t.notMatch(r.stdout, /user\.daxvm/, `getfattr -d does not list it\n${r.stdout}`);
  t.match(r.stdout, /user\.mine="v"/, 'real xattrs are listed');
  const host = tempDir(t);
  r = run('cp', ['-a', f, join(host, 'copy')]);
  t.equal(r.status, 0, `cp -a out of the mount works\n${r.summary}`);
  r = run('cp', ['-a', join(host, 'copy'), join(M, 'copy')]);
  t.equal(r.status, 0, `cp -a back in works\n${r.summary}`);
  t.not(ppt(join(M, 'copy')).ino, on.ino, 'the copy has its own');
  await m.stop();
});

t.test('occupancy for files of known size and alignment', async (t) => {
  const m = await freshMount(t, { size: '512M' });
  const M = m.mnt;
  const host = tempDir(t);
  setKnob(M, 'page_tables_on', 1);
  t.same(occupied(M), { pmem: 0, dram: 0 }, 'empty: nothing');

  // A 4 KiB file: one PTE node.
  let before = occupied(M).pmem;
  let r = sh(`head -c 4096 /dev/urandom > ${M}/small`);
  t.equal(r.status, 0, r.summary);
  let p = ppt(join(M, 'small'));
  t.match(p, { level: 1, nodes: 1, size: 4096 }, `4 KiB file: ${JSON.stringify(p)}`);
  t.equal(occupied(M).pmem - before, 4, 'a 4 KiB file: PMEM grows by 4 KB');

  // 64 MiB with dd bs=1M: 2 MiB-aligned, huge PMD entries only, one PMD root.
  let s0 = stats(M);
  before = occupied(M).pmem;
  r = sh(`dd if=/dev/urandom of=${host}/big bs=1M count=64 status=none && dd if=${host}/big of=${M}/big bs=1M status=none`);
  t.equal(r.status, 0, r.summary);
  p = ppt(join(M, 'big'));
  t.match(p, { level: 2, nodes: 1, size: 64 * MiB }, `64 MiB file: a PMD root and nothing below (${JSON.stringify(p)})`);
  t.equal(occupied(M).pmem - before, 4, 'a 64 MiB aligned file: PMEM grows by 4 KB (its PMD root)');
  let s1 = stats(M);
  t.equal(s1.hugePmdEntries! - s0.hugePmdEntries!, 32, '32 huge PMD entries');
  t.equal(s1.pteEntries! - s0.pteEntries!, 0, 'no PTE entries');
  t.equal(run('cmp', [join(host, 'big'), join(M, 'big')]).status, 0, 'content');

  // Fragmented: two files appended 4 KiB at a time, interleaved; every block its own PTE.
  r = sh(`head -c $((3*1024*1024)) /dev/urandom > ${host}/a && head -c $((3*1024*1024)) /dev/urandom > ${host}/b`);
  t.equal(r.status, 0, r.summary);
  /**
   * What `dd if=A of=FA bs=4k count=1 skip=I oflag=append conv=notrunc` did, for fa then fb, block by block:
   * open O_APPEND, one 4 KiB write, close. The syscalls from this process (the daemon is a child), not 1200 dd starts.
   */
  const a = fs.readFileSync(join(host, 'a'));
  const b = fs.readFileSync(join(host, 'b'));
  const appendBoth = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      for (const [src, name] of [[a, 'fa'], [b, 'fb']] as const) {
        const fd = fs.openSync(join(M, name), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o644);
        try {
          const n = fs.writeSync(fd, src, i * 4096, 4096);
          if (n !== 4096) throw new Error(`${name} block ${i}: a short write of ${n} bytes`);
        } finally {
          fs.closeSync(fd);
        }
      }
    }
  };
  s0 = stats(M);
  before = occupied(M).pmem;
  appendBoth(0, 300);
  const fa = ppt(join(M, 'fa'));
  const fb = ppt(join(M, 'fb'));
  t.match(fa, { level: 1, nodes: 1, size: 300 * 4096 }, `1.2 MiB interleaved: a PTE root (${JSON.stringify(fa)})`);
  t.match(fb, { level: 1, nodes: 1, size: 300 * 4096 });
  s1 = stats(M);
  t.equal(s1.pteEntries! - s0.pteEntries!, 600, '300 PTE entries each');
  t.equal(occupied(M).pmem - before, 8, 'PMEM grows by one node each');

  // Past 2 MiB: the first 2 MiB move to an aligned region (one huge entry), the rest stays in PTEs.
  appendBoth(300, 600);
  const fa2 = ppt(join(M, 'fa'));
  const fb2 = ppt(join(M, 'fb'));
  t.match(fa2, { level: 2, nodes: 2, size: 600 * 4096 }, `2.3 MiB interleaved: PMD root and one PTE node (${JSON.stringify(fa2)})`);
  t.match(fb2, { level: 2, nodes: 2 });
  const s2 = stats(M);
  t.equal(s2.hugePmdEntries! - s0.hugePmdEntries!, 2, 'one huge entry each');
  t.equal(s2.pteEntries! - s0.pteEntries!, 2 * (600 - 512), 'the tail of each in PTEs');
  t.equal(occupied(M).pmem - before, 4 * (fa2.nodes + fb2.nodes), 'PMEM: 4 KB per node');
  r = sh(`cmp <(head -c $((600*4096)) ${host}/a) ${M}/fa && cmp <(head -c $((600*4096)) ${host}/b) ${M}/fb`);
  t.equal(r.status, 0, `contents\n${r.summary}`);
  t.equal(s2.tableNodes! * 4, occupied(M).pmem, 'stats tableNodes agrees with kbytes_occupied');

  // Removing files gives their nodes back.
  r = sh(`rm ${M}/small ${M}/big ${M}/fa ${M}/fb`);
  t.equal(r.status, 0, r.summary);
  t.same(occupied(M), { pmem: 0, dram: 0 }, 'all files gone: nothing occupied');

  // Off: every table deleted; on again: rebuilt for what exists.
  r = sh(`cp ${host}/big ${M}/big && head -c 5000 ${host}/a > ${M}/s`);
  t.equal(r.status, 0, r.summary);
  t.equal(occupied(M).pmem, 8);
  t.ok(occupied(M).dram > 0, `DRAM: the shared namespace's copies of the tables (${occupied(M).dram} KiB)`);
  setKnob(M, 'page_tables_on', 0);
  t.same(occupied(M), { pmem: 0, dram: 0 }, 'page_tables_on 0: nothing occupied');
  t.match(ppt(join(M, 'big')), { root: 0, level: 0, nodes: 0 }, 'no table');
  fs.writeFileSync(join(M, 'while-off'), Buffer.alloc(3 * MiB, 7));
  t.equal(occupied(M).pmem, 0, 'no tables built while off');
  setKnob(M, 'page_tables_on', 1);
  t.match(ppt(join(M, 'big')), { level: 2, nodes: 1 }, 'rebuilt: big');
  t.match(ppt(join(M, 'while-off')), { level: 2 }, 'built for a file written while off');
  t.equal(occupied(M).pmem, 4 * (1 + 1 + ppt(join(M, 'while-off')).nodes), 'occupancy after the rebuild');
  const st = await m.stop();
  t.equal(st.code, 0);
  const f = fsck(m.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});

t.test('tables follow truncate up and down', async (t) => {
  const m = await freshMount(t);
  const M = m.mnt;
  const f = join(M, 'f');
  setKnob(M, 'page_tables_on', 1);
  let r = sh(`head -c $((100*1024)) /dev/urandom > ${f}`);
  t.equal(r.status, 0, r.summary);
  const steps: Array<[string, number, number]> = [
    ['3M', 2, 3 * MiB], ['3G', 3, 3 * 1024 * MiB], ['100K', 1, 100 * 1024], ['3M', 2, 3 * MiB], ['100K', 1, 100 * 1024],
  ];
  t.equal(ppt(f).level, 1, '100 KiB: level 1');
  for (const [size, level, bytes] of steps) {
    r = run('truncate', ['-s', size, f]);
    t.equal(r.status, 0, r.summary);
    const p = ppt(f);
    t.match(p, { level, size: bytes }, `truncate -s ${size}: level ${level} (${JSON.stringify(p)})`);
    t.equal(occupied(M).pmem, 4 * p.nodes, `occupancy: ${p.nodes} nodes`);
  }
  r = run('truncate', ['-s', '0', f]);
  t.match(ppt(f), { root: 0, level: 0, nodes: 0, size: 0 }, 'truncate -s 0: no table');
  t.equal(occupied(M).pmem, 0);
  // A sparse file has no table until it has blocks; writing far out builds the levels it needs.
  r = sh(`truncate -s 3G ${f} && printf far | dd of=${f} bs=1 seek=$((2*1024*1024*1024 + 5)) conv=notrunc status=none`);
  t.equal(r.status, 0, r.summary);
  const far = ppt(f);
  t.match(far, { level: 3, nodes: 3 }, `one block at 2 GiB of a 3 GiB file: PUD, PMD, PTE nodes (${JSON.stringify(far)})`);
  const b = Buffer.alloc(3);
  const fd = fs.openSync(f, 'r');
  fs.readSync(fd, b, 0, 3, 2 * 1024 * MiB + 5);
  fs.closeSync(fd);
  t.equal(b.toString(), 'far');
  await m.stop();
  const fk = fsck(m.pool);
  t.equal(fk.status, 0, `fsck clean\n${fk.summary}`);
});

t.test('tables survive a remount and a SIGKILL of the daemon', async (t) => {
  const p = makePool(t, { size: '512M' });
  const m1 = await mountPool(t, p);
  const M1 = m1.mnt;
  setKnob(M1, 'page_tables_on', 1);
  const r = sh(`
    head -c 4096 /dev/urandom > ${M1}/small
    dd if=/dev/urandom of=${M1}/big bs=1M count=64 status=none
    head -c $((5*1024*1024 + 777)) /dev/urandom > ${M1}/odd
    mkdir ${M1}/d && head -c 300000 /dev/urandom > ${M1}/d/x
  `);
  t.equal(r.status, 0, r.summary);
  const names = ['small', 'big', 'odd', 'd/x'];
  const shape = (mnt: string) => Object.fromEntries(names.map((n) => {
    const { ino, gen, root, level, nodes, size } = ppt(join(mnt, n));
    return [n, { ino, gen, root, level, nodes, size }];
  }));
  const hashes = (mnt: string) => names.map((n) => sha(fs.readFileSync(join(mnt, n))));
  const s1 = shape(M1);
  const h1 = hashes(M1);
  const occ1 = occupied(M1);
  t.ok(Object.values(s1).every((x) => x.root > 0), 'every file has a table');
  const st = await m1.stop();
  t.equal(st.code, 0);
  t.equal(fsck(p.pool).status, 0, 'fsck clean after unmount');

  const m2 = await mountPool(t, p);
  t.same(shape(m2.mnt), s1, 'same roots and levels after a remount');
  t.same(occupied(m2.mnt), occ1, 'same occupancy');
  t.same(hashes(m2.mnt), h1);
  // More work, then SIGKILL. getfattr commits first, so what it reported is in the pool.
  const r2 = sh(`
    dd if=/dev/urandom of=${m2.mnt}/late bs=1M count=6 status=none
    truncate -s 1M ${m2.mnt}/odd
    rm ${m2.mnt}/small
  `);
  t.equal(r2.status, 0, r2.summary);
  names.splice(0, 1, 'late');
  const s2 = shape(m2.mnt);
  const h2 = hashes(m2.mnt);
  const occ2 = occupied(m2.mnt);
  t.match(s2.odd, { level: 1, size: MiB }, 'odd truncated to 1 MiB: level 1');
  await m2.kill();

  const m3 = await mountPool(t, p);
  t.same(shape(m3.mnt), s2, 'same roots and levels after SIGKILL and recovery');
  t.same(occupied(m3.mnt), occ2, 'same occupancy');
  t.same(hashes(m3.mnt), h2, 'same contents');
  t.equal(errCode(() => fs.statSync(join(m3.mnt, 'small'))), 'ENOENT');
  const st3 = await m3.stop();
  t.equal(st3.code, 0);
  const f = fsck(p.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});

/** A child holding files open and reading (and appending to one) through its fds on command. */
function holder(t: Test, paths: string[], appendTo: string) {
  const script = `
    const fs = require('fs'), crypto = require('crypto'), rl = require('readline');
    const paths = JSON.parse(process.argv[1]);
    const fds = paths.map((p) => fs.openSync(p, 'r'));
    const wfd = fs.openSync(process.argv[2], 'a+');
    const hashAll = () => fds.concat([wfd]).map((fd) => {
      const h = crypto.createHash('sha256'); const b = Buffer.alloc(1 << 20); let pos = 0, n;
      while ((n = fs.readSync(fd, b, 0, b.length, pos)) > 0) { h.update(b.subarray(0, n)); pos += n; }
      return h.digest('hex');
    });
    console.log('open');
    let n = 0;
    rl.createInterface({ input: process.stdin }).on('line', (l) => {
      if (l === 'read') console.log('sha ' + hashAll().join(' '));
      else if (l.startsWith('append ')) { fs.writeSync(wfd, Buffer.alloc(Number(l.slice(7)), ++n)); console.log('appended'); }
      else if (l === 'close') { fds.concat([wfd]).forEach((fd) => fs.closeSync(fd)); console.log('closed'); process.exit(0); }
    });`;
  return lineChild(t, script, [JSON.stringify(paths), appendTo]);
}

t.test('page_tables_on flipped while files are open and read', async (t) => {
  const m = await freshMount(t, { size: '512M' });
  const M = m.mnt;
  const host = tempDir(t);
  let r = sh(`
    dd if=/dev/urandom of=${host}/big bs=1M count=40 status=none
    head -c 12345 /dev/urandom > ${host}/small
    head -c $((3*1024*1024 + 5)) /dev/urandom > ${host}/mid
    cp ${host}/big ${host}/small ${host}/mid ${M}/
    : > ${M}/log
  `);
  t.equal(r.status, 0, r.summary);
  const names = ['big', 'small', 'mid'];
  const h = holder(t, names.map((n) => join(M, n)), join(M, 'log'));
  t.equal(await h.next(), 'open');
  const want = names.map((n) => sha(fs.readFileSync(join(host, n))));
  let log = Buffer.alloc(0);
  for (let i = 0; i < 6; i++) {
    const v = i % 2 === 0 ? 1 : 0;
    setKnob(M, 'page_tables_on', v);
    t.equal(knob(M, 'page_tables_on'), `${v}\n`);
    const occ = occupied(M).pmem;
    if (v) t.ok(occ > 0, `on: tables for the open files (${occ} KB)`);
    else t.equal(occ, 0, 'off: no tables');
    t.equal(await h.send(`append ${5000 + i * 70000}`), 'appended');
    log = Buffer.concat([log, Buffer.alloc(5000 + i * 70000, i + 1)]);
    const got = (await h.send('read')).split(' ');
    t.same(got.slice(1), [...want, sha(log)], `flip ${i + 1} (${v}): reads through the open fds stay correct`);
    if (v) {
      t.ok(['big', 'small', 'mid', 'log'].every((n) => ppt(join(M, n)).root > 0), 'every open file has a table');
    }
  }
  t.equal(await h.send('close'), 'closed');
  r = sh(`cmp ${host}/big ${M}/big && cmp ${host}/mid ${M}/mid && cmp ${host}/small ${M}/small`);
  t.equal(r.status, 0, r.summary);
  t.equal(sha(fs.readFileSync(join(M, 'log'))), sha(log), 'the appended file, read afresh');
  const st = await m.stop();
  t.equal(st.code, 0);
  const f = fsck(m.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});
