// Persistence across unmount/remount (content and metadata, inode numbers),
// and a daemon killed with SIGKILL mid-workload: remount recovers, fsck is
// clean, every file whose fsync returned is intact.
import t from 'tap';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fsck, makePool, mountPool, run, sh, sleep, tempDir } from './helpers/mount.js';

const TMPFS_MAGIC = 0x01021994;

interface Snap {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  mtimeMs: number;
  sha?: string;
  link?: string;
  xattrs?: string;
}

/** Everything a user would check, for every path under root. */
function snapshot(root: string): Map<string, Snap> {
  const out = new Map<string, Snap>();
  const walk = (rel: string) => {
    const p = join(root, rel);
    const s = fs.lstatSync(p);
    const snap: Snap = {
      type: s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : s.isFile() ? 'file' : 'other',
      mode: s.mode,
      uid: s.uid,
      gid: s.gid,
      size: s.isDirectory() ? 0 : s.size,
      nlink: s.nlink,
      ino: s.ino,
      mtimeMs: s.mtimeMs,
    };
    if (s.isFile()) snap.sha = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    if (s.isSymbolicLink()) snap.link = fs.readlinkSync(p);
    if (!s.isSymbolicLink()) snap.xattrs = run('getfattr', ['-d', '-e', 'hex', '--absolute-names', p]).stdout.replace(/^# file:.*\n/m, '');
    out.set(rel || '/', snap);
    if (s.isDirectory()) for (const n of fs.readdirSync(p).sort()) if (!(rel === '' && n === '.daxvm')) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

t.test('persistence across unmount and remount', async (t) => {
  const p = makePool(t);
  const m1 = await mountPool(t, p);
  const M = m1.mnt;
  const r = sh(`
    mkdir -p ${M}/a/b/c ${M}/empty
    head -c 5000000 /dev/urandom > ${M}/a/big
    echo small > ${M}/a/b/small
    printf 'x' | dd of=${M}/sparse bs=1 seek=$((300*1024*1024)) status=none
    ln ${M}/a/b/small ${M}/a/hard
    ln -s b/small ${M}/a/sym
    chmod 0751 ${M}/a/b
    chown 1000:1000 ${M}/a/big
    touch -d '1999-12-31 23:59:59.5' ${M}/a/b/c
    setfattr -n user.k -v v ${M}/a/big
    mkdir ${M}/gone && echo x > ${M}/gone/x && rm -r ${M}/gone
    mv ${M}/a/b/small ${M}/a/b/renamed
    truncate -s 1234567 ${M}/a/big
  `);
  t.equal(r.status, 0, r.summary);
  const before = snapshot(M);
  const st = await m1.stop();
  t.equal(st.code, 0, 'clean unmount');
  const f0 = fsck(p.pool);
  t.equal(f0.status, 0, `fsck clean after unmount\n${f0.summary}`);

  const m2 = await mountPool(t, p);
  const after = snapshot(m2.mnt);
  t.same([...after.keys()], [...before.keys()], 'same names');
  for (const [k, v] of before) t.same(after.get(k), v, `same content and metadata: ${k}`);
  // and it keeps working after the remount
  fs.writeFileSync(join(m2.mnt, 'new'), 'new after remount');
  const inoNew = fs.statSync(join(m2.mnt, 'new')).ino;
  t.notOk([...before.values()].some((s) => s.ino === inoNew), 'a new file gets an inode number not in use');
  const st2 = await m2.stop();
  t.equal(st2.code, 0);
  const m3 = await mountPool(t, p, { opts: ['ro'] });
  t.equal(fs.readFileSync(join(m3.mnt, 'new'), 'utf8'), 'new after remount', 'third mount sees it');
  await m3.stop();
});

t.test('SIGKILL of the daemon mid-workload: recovery, fsck clean, fsync\'ed files intact', async (t) => {
  const p = makePool(t, { size: '256M' });
  const m1 = await mountPool(t, p);
  const host = tempDir(t);
  const record = join(host, 'synced.txt');
  // The worker creates files with known contents, fsyncs each, and appends the
  // name to a record on the HOST once fsync has returned. Around that it churns
  // metadata (renames, unlinks, mkdirs, xattrs, truncates) without fsync.
  const worker = `
    const fs = require('fs'), path = require('path');
    const [mnt, record] = process.argv.slice(1);
    const rec = fs.openSync(record, 'a');
    const content = (i) => { const n = 1000 + (i * 7919) % 300000; const b = Buffer.alloc(n);
      for (let j = 0; j < n; j += 4) b.writeUInt32LE(((i + 1) * 2654435761 + j) >>> 0, Math.min(j, n - 4)); return b; };
    for (let i = 0; ; i++) {
      const dir = path.join(mnt, 'd' + (i % 16));
      try { fs.mkdirSync(dir); } catch (e) { if (e.code !== 'EEXIST') throw e; }
      const name = path.join('d' + (i % 16), 'f' + i);
      const fd = fs.openSync(path.join(mnt, name), 'w');
      const b = content(i);
      fs.writeSync(fd, b, 0, b.length, 0);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.writeSync(rec, name + '\\n'); fs.fsyncSync(rec);
      // unsynced churn
      const j = path.join(mnt, 'junk' + (i % 5));
      fs.writeFileSync(j, b.subarray(0, 5000));
      if (i % 3 === 0) fs.renameSync(j, path.join(mnt, 'junk-r' + (i % 7)));
      if (i % 4 === 0) try { fs.unlinkSync(path.join(mnt, 'junk-r' + ((i + 3) % 7))); } catch {}
      if (i % 5 === 0) try { fs.truncateSync(path.join(mnt, 'junk' + ((i + 1) % 5)), 0); } catch {}
      if (i % 6 === 0) { try { fs.mkdirSync(path.join(mnt, 'tmpd')); } catch {} try { fs.rmdirSync(path.join(mnt, 'tmpd')); } catch {} }
    }`;
  const child = spawn(process.execPath, ['-e', worker, m1.mnt, record], { stdio: ['ignore', 'ignore', 'pipe'] });
  let workerErr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (workerErr += d));
  const childExit = new Promise((r) => child.once('exit', r));
  // let it run until a good number of files were fsync'ed
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    await sleep(200);
    const n = fs.existsSync(record) ? fs.readFileSync(record, 'utf8').split('\n').length - 1 : 0;
    if (n >= 150) break;
    if (child.exitCode !== null) break;
  }
  t.equal(child.exitCode, null, `worker still running when we pull the plug${workerErr ? `\n${workerErr}` : ''}`);
  // Behind those fsyncs the daemon prewrote the host's unwritten blocks ahead of use (not on a tmpfs host:
  // it has none); the kill may land in the middle of that too.
  const prewritten = (JSON.parse(fs.readFileSync(join(m1.mnt, '.daxvm', 'stats'), 'utf8')) as { blocksPrewritten: number }).blocksPrewritten;
  if (fs.statfsSync(dirname(p.pool)).type !== TMPFS_MAGIC) t.ok(prewritten > 0, `prewritten: ${prewritten} blocks`);
  await m1.kill(); // SIGKILL, then fusermount -uz
  child.kill('SIGKILL');
  await childExit;
  const synced = fs.readFileSync(record, 'utf8').split('\n').filter(Boolean);
  t.ok(synced.length > 20, `${synced.length} files were fsync'ed before the kill`);

  const m2 = await mountPool(t, p);
  let bad = 0;
  for (const name of synced) {
    const i = Number(name.split('/f')[1]);
    const n = 1000 + (i * 7919) % 300000;
    const want = Buffer.alloc(n);
    for (let j = 0; j < n; j += 4) want.writeUInt32LE(((i + 1) * 2654435761 + j) >>> 0, Math.min(j, n - 4));
    let got: Buffer | string;
    try {
      got = fs.readFileSync(join(m2.mnt, name));
    } catch (e) {
      got = (e as Error).message;
    }
    if (!(Buffer.isBuffer(got) && got.equals(want))) {
      bad++;
      if (bad <= 5) t.fail(`fsync'ed file ${name} not intact: ${Buffer.isBuffer(got) ? `${got.length} bytes, want ${n}` : got}`);
    }
  }
  t.equal(bad, 0, `all ${synced.length} fsync'ed files intact after recovery`);
  // the tree is usable
  const r = sh(`find ${m2.mnt} -type f | wc -l && echo ok > ${m2.mnt}/after-crash && cat ${m2.mnt}/after-crash`);
  t.equal(r.status, 0, r.summary);
  const st = await m2.stop();
  t.equal(st.code, 0, 'clean unmount after recovery');
  const f = fsck(p.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});

t.test('SIGKILL right after mkfs+mount with nothing written, and twice in a row', async (t) => {
  const p = makePool(t);
  const m1 = await mountPool(t, p);
  fs.writeFileSync(join(m1.mnt, 'a'), 'a');
  await m1.kill();
  const m2 = await mountPool(t, p);
  fs.writeFileSync(join(m2.mnt, 'b'), 'b');
  const fd = fs.openSync(join(m2.mnt, 'b'), 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  await m2.kill();
  const m3 = await mountPool(t, p);
  t.equal(fs.readFileSync(join(m3.mnt, 'b'), 'utf8'), 'b', 'fsync\'ed file survives a second crash');
  await m3.stop();
  const f = fsck(p.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});
