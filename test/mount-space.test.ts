// Space accounting as users see it: df after writes and deletes, unlink of an
// open file (data lives until the last close), rmdir around an open-unlinked
// file, and a full pool (ENOSPC, the file system stays whole, fsck clean).
import t from 'tap';
import type { Test } from 'tap';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { df, errCode, freshMount, fsck, run, sh } from './helpers/mount.js';
import { dfUntil, lineChild } from './helpers/child.js';

const MiB = 1024 * 1024;

/** A child process holding `path` open. Commands on stdin: "read" (sha256 of the whole file through the fd), "close". */
function holdOpen(t: Test, path: string) {
  const script = `
    const fs = require('fs'), crypto = require('crypto'), rl = require('readline');
    const fd = fs.openSync(process.argv[1], 'r');
    console.log('open');
    rl.createInterface({ input: process.stdin }).on('line', (l) => {
      if (l === 'read') {
        try {
          const h = crypto.createHash('sha256'); const b = Buffer.alloc(1 << 20); let pos = 0, n;
          while ((n = fs.readSync(fd, b, 0, b.length, pos)) > 0) { h.update(b.subarray(0, n)); pos += n; }
          console.log('sha ' + h.digest('hex') + ' ' + pos);
        } catch (e) { console.log('error ' + e.code); }
      } else if (l === 'close') {
        try { fs.closeSync(fd); console.log('closed'); } catch (e) { console.log('error ' + e.code); }
        process.exit(0);
      }
    });`;
  return lineChild(t, script, [path]);
}

t.test('df after writing 64 MiB and after deleting it', async (t) => {
  const m = await freshMount(t);
  const d0 = df(m.mnt);
  t.ok(d0.size > 200 * 1024 && d0.size <= 256 * 1024, `size of a 256M pool: ${d0.size} KiB`);
  t.ok(d0.avail > 200 * 1024, `avail ${d0.avail} KiB`);
  const r = sh(`dd if=/dev/urandom of=${m.mnt}/big bs=1M count=64 conv=fsync status=none`);
  t.equal(r.status, 0, r.summary);
  const d1 = df(m.mnt);
  const grew = d1.used - d0.used;
  t.ok(grew >= 64 * 1024 && grew <= 64 * 1024 + 4096, `used grew by ${grew} KiB (64 MiB written)`);
  t.ok(d0.avail - d1.avail >= 64 * 1024, `avail fell by ${d0.avail - d1.avail} KiB`);
  fs.unlinkSync(join(m.mnt, 'big'));
  const d2 = await dfUntil(m.mnt, (d) => d.used - d0.used < 1024);
  t.ok(d2.used - d0.used < 1024, `used back to ${d2.used} KiB (was ${d0.used})`);
  t.ok(Math.abs(d2.avail - d0.avail) < 1024, `avail back to ${d2.avail} KiB (was ${d0.avail})`);
});

t.test('unlink of an open file: data lives until the last close', async (t) => {
  const m = await freshMount(t);
  const f = join(m.mnt, 'doomed');
  const d0 = df(m.mnt);
  const data = Buffer.alloc(32 * MiB);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i * 2654435761 >>> 0, i);
  fs.writeFileSync(f, data);
  const want = createHash('sha256').update(data).digest('hex');
  const d1 = df(m.mnt);
  t.ok(d1.used - d0.used >= 32 * 1024, `32 MiB in use (${d1.used - d0.used} KiB)`);

  const h = holdOpen(t, f);
  t.equal(await h.next(), 'open');
  const rm = run('rm', [f]);
  t.equal(rm.status, 0, rm.summary);
  t.equal(errCode(() => fs.statSync(f)), 'ENOENT', 'the name is gone');
  const ls = run('ls', ['-a', m.mnt]);
  t.same(ls.stdout.split('\n').filter((x) => x && x !== '.' && x !== '..' && x !== '.daxvm'), [], `ls -a shows nothing of it (no .fuse_hidden files): ${ls.stdout.trim()}`);
  t.equal(await h.send('read'), `sha ${want} ${data.length}`, 'read through the open fd still gives the data');
  const held = df(m.mnt);
  t.ok(held.used - d0.used >= 32 * 1024, `space still held while open (${held.used - d0.used} KiB)`);
  fs.writeFileSync(f, 'new file, same name');
  t.equal(await h.send('read'), `sha ${want} ${data.length}`, 'a new file of that name does not disturb the open one');
  fs.unlinkSync(f);
  t.equal(await h.send('close'), 'closed');
  await new Promise((r) => h.child.once('exit', r));
  const d2 = await dfUntil(m.mnt, (d) => d.used - d0.used < 1024);
  t.ok(d2.used - d0.used < 1024, `space returned to df after the last close (${d2.used - d0.used} KiB over the start)`);
});

t.test('rmdir of a dir with an open-and-unlinked file inside succeeds', async (t) => {
  const m = await freshMount(t);
  const dir = join(m.mnt, 'dir');
  fs.mkdirSync(dir);
  const d0 = df(m.mnt);
  fs.writeFileSync(join(dir, 'f'), 'still here');
  fs.writeFileSync(join(dir, 'big'), Buffer.alloc(16 * MiB, 1));
  const h = holdOpen(t, join(dir, 'f'));
  const hb = holdOpen(t, join(dir, 'big'));
  t.equal(await hb.next(), 'open');
  t.equal(await h.next(), 'open');
  fs.unlinkSync(join(dir, 'f'));
  fs.unlinkSync(join(dir, 'big'));
  t.same(fs.readdirSync(dir), [], 'dir looks empty');
  t.equal(errCode(() => fs.rmdirSync(dir)), 'no error', 'rmdir succeeds');
  t.equal(errCode(() => fs.statSync(dir)), 'ENOENT', 'dir gone');
  const want = createHash('sha256').update('still here').digest('hex');
  // Its name is gone: the read comes by node id and file handle, as ext4 reads on.
  t.equal(await h.send('read'), `sha ${want} 10`, 'the open file still reads');
  t.equal(await hb.send('read'), `sha ${createHash('sha256').update(Buffer.alloc(16 * MiB, 1)).digest('hex')} ${16 * MiB}`, 'so does the big one');
  t.equal(await h.send('close'), 'closed');
  t.equal(await hb.send('close'), 'closed');
  const d1 = await dfUntil(m.mnt, (d) => d.used - d0.used < 1024);
  t.ok(d1.used - d0.used < 1024, `space of both files returned after the last close (${d1.used - d0.used} KiB over the start)`);
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const f = fsck(m.pool);
  t.equal(f.status, 0, `fsck clean: nothing leaked\n${f.summary}`);
});

t.test('a full pool: ENOSPC, the file system stays whole, fsck clean, space returns', async (t) => {
  const m = await freshMount(t, { size: '256M' });
  const M = m.mnt;
  fs.writeFileSync(join(M, 'before'), 'written before the pool filled');
  const d0 = df(M);
  const r = run('dd', ['if=/dev/zero', `of=${M}/fill`, 'bs=1M', 'status=none']);
  t.not(r.status, 0, 'dd stops with an error');
  t.match(r.stderr, /No space left on device/, 'the error is ENOSPC');
  const size = fs.statSync(join(M, 'fill')).size;
  t.ok(size >= 200 * MiB, `filled ${size / MiB} MiB of a 256M pool`);
  const dfull = df(M);
  t.ok(dfull.avail < 1024, `df avail near 0 when full: ${dfull.avail} KiB`);
  t.equal(errCode(() => fs.writeFileSync(join(M, 'more'), Buffer.alloc(1 * MiB))), 'ENOSPC', 'another 1 MiB: ENOSPC');
  // still whole
  t.equal(fs.readFileSync(join(M, 'before'), 'utf8'), 'written before the pool filled', 'old file reads');
  t.ok(fs.readdirSync(M).includes('fill'), 'readdir works');
  const cmp = sh(`cmp -n ${size} /dev/zero ${M}/fill`);
  t.equal(cmp.status, 0, `what was written reads back\n${cmp.summary}`);
  fs.unlinkSync(join(M, 'fill'));
  try {
    fs.unlinkSync(join(M, 'more'));
  } catch {
    /* may not exist */
  }
  const d1 = await dfUntil(M, (d) => Math.abs(d.avail - d0.avail) < 1024);
  t.ok(Math.abs(d1.avail - d0.avail) < 1024, `space returns after rm: avail ${d1.avail} KiB (was ${d0.avail})`);
  const w = sh(`dd if=/dev/urandom of=${M}/after bs=1M count=100 conv=fsync status=none`);
  t.equal(w.status, 0, `100 MiB write works again\n${w.summary}`);
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const f = fsck(m.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});
