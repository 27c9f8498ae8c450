// Files unlinked while a process holds them open, through the real mount, as
// on ext4: the fd keeps reading and writing (also after `rm -rf` of the
// directory), fstat says nlink 0, no `.fuse_hidden*` name ever shows, and
// the space returns to df at the last close. Also the times: touch -a/-m and
// cp -a (utimens with one time alone, and the real mtime).
import t from 'tap';
import type { Test } from 'tap';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { dfUntil, lineChild } from './helpers/child.js';
import { df, errCode, freshMount, fsck, run, sh, tempDir } from './helpers/mount.js';

const MiB = 1024 * 1024;

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * A child process holding `path` open read-write. Commands on stdin, one
 * answer line each: "read" (sha256 and length of the whole file through the
 * fd), "write OFFSET TEXT" (pwrite), "sync" (fsync), "truncate SIZE"
 * (ftruncate), "stat" (fstat: nlink and size), "close". A failure answers
 * "error CODE".
 */
function holder(t: Test, path: string) {
  const script = `
    const fs = require('fs'), crypto = require('crypto'), rl = require('readline');
    const fd = fs.openSync(process.argv[1], 'r+');
    console.log('open');
    const err = (e) => 'error ' + (e.code || e.message);
    rl.createInterface({ input: process.stdin }).on('line', (l) => {
      const [cmd, arg, ...rest] = l.split(' ');
      try {
        if (cmd === 'read') {
          const h = crypto.createHash('sha256'); const b = Buffer.alloc(1 << 20); let pos = 0, n;
          while ((n = fs.readSync(fd, b, 0, b.length, pos)) > 0) { h.update(b.subarray(0, n)); pos += n; }
          console.log(h.digest('hex') + ' ' + pos);
        } else if (cmd === 'write') {
          console.log('wrote ' + fs.writeSync(fd, rest.join(' '), Number(arg)));
        } else if (cmd === 'sync') {
          fs.fsyncSync(fd); console.log('synced');
        } else if (cmd === 'truncate') {
          fs.ftruncateSync(fd, Number(arg)); console.log('truncated');
        } else if (cmd === 'stat') {
          const s = fs.fstatSync(fd); console.log('nlink ' + s.nlink + ' size ' + s.size);
        } else if (cmd === 'close') { fs.closeSync(fd); console.log('closed'); process.exit(0); }
      } catch (e) { console.log(err(e)); }
    });`;
  return lineChild(t, script, [path]);
}

/** Names in a directory as `ls -a` lists them. */
function lsA(dir: string): string[] {
  const r = run('ls', ['-a', dir]);
  if (r.status !== 0) throw new Error(r.summary);
  return r.stdout.split('\n').filter((x) => x);
}

/** 16 MiB that tell their offsets apart. */
function pattern(): Buffer {
  const data = Buffer.alloc(16 * MiB);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  return data;
}

t.test('unlink of an open file: fstat says nlink 0, no hidden name, the fd reads and writes', async (t) => {
  const m = await freshMount(t);
  const dir = join(m.mnt, 'd');
  fs.mkdirSync(dir);
  const f = join(dir, 'f');
  const data = pattern();
  fs.writeFileSync(f, data);
  const d0 = df(m.mnt);

  const h = holder(t, f);
  t.equal(await h.next(), 'open');
  const rm = run('rm', [f]);
  t.equal(rm.status, 0, rm.summary);
  t.equal(errCode(() => fs.statSync(f)), 'ENOENT', 'the name is gone');
  t.same(lsA(dir), ['.', '..'], 'ls -a of its directory: nothing, no .fuse_hidden name');
  t.same(lsA(m.mnt).filter((n) => n.startsWith('.fuse_hidden')), [], 'none at the root either');
  t.equal(await h.send('stat'), `nlink 0 size ${data.length}`, 'fstat works: nlink 0');
  t.equal(await h.send('read'), `${sha(data)} ${data.length}`, 'read through the fd');
  t.equal(await h.send('write 100 hello'), 'wrote 5');
  data.write('hello', 100);
  t.equal(await h.send('read'), `${sha(data)} ${data.length}`, 'the write reads back');
  t.equal(await h.send(`write ${data.length} tail`), 'wrote 4', 'grows past its end');
  t.equal(await h.send('stat'), `nlink 0 size ${data.length + 4}`);
  t.ok(df(m.mnt).used >= d0.used - 1024, 'space still held while open');
  const rmdir = run('rmdir', [dir]);
  t.equal(rmdir.status, 0, `its directory is empty: rmdir works\n${rmdir.summary}`);
  t.equal(await h.send('close'), 'closed');
  await h.exited();
  const d1 = await dfUntil(m.mnt, (d) => d0.used - d.used >= 16 * 1024 - 256);
  t.ok(d0.used - d1.used >= 16 * 1024 - 256, `space returned to df at the last close (${d0.used - d1.used} KiB)`);
});

t.test('rename of a name onto another name of the same file, that one held open: nothing changes', async (t) => {
  // libfuse hides an open target before renaming onto it; for two names of one
  // file that hide used to remove the source name for good (POSIX: rename does nothing).
  const m = await freshMount(t);
  const a = join(m.mnt, 'a');
  const b = join(m.mnt, 'b');
  fs.writeFileSync(a, 'one file, two names');
  fs.linkSync(a, b);
  const h = holder(t, b);
  t.equal(await h.next(), 'open');
  fs.renameSync(a, b);
  t.same(lsA(m.mnt).filter((n) => n !== '.daxvm'), ['.', '..', 'a', 'b'], 'both names still there, no hidden name');
  t.equal(fs.statSync(a).nlink, 2, 'link count 2');
  t.equal(fs.statSync(a).ino, fs.statSync(b).ino, 'one inode');
  t.equal(await h.send('close'), 'closed');
  await h.exited();
  t.equal(fs.readFileSync(a, 'utf8'), 'one file, two names', 'the content, after the last close');
  t.equal(fs.statSync(b).nlink, 2, 'still two names after the close');
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const f = fsck(m.pool);
  t.equal(f.status, 0, `fsck clean\n${f.summary}`);
});

t.test('rm -rf of a directory with a file held open inside: the fd keeps working', async (t) => {
  const m = await freshMount(t);
  const dir = join(m.mnt, 'tree');
  fs.mkdirSync(join(dir, 'sub'), { recursive: true });
  const f = join(dir, 'sub', 'held');
  const data = pattern();
  fs.writeFileSync(f, data);
  fs.writeFileSync(join(dir, 'other'), 'not held');
  const d0 = df(m.mnt);

  const h = holder(t, f);
  t.equal(await h.next(), 'open');
  const rm = run('rm', ['-rf', dir]);
  t.equal(rm.status, 0, `rm -rf succeeds\n${rm.summary}`);
  t.equal(errCode(() => fs.statSync(dir)), 'ENOENT', 'the directory is gone');
  t.same(lsA(m.mnt).filter((n) => n !== '.' && n !== '..' && n !== '.daxvm'), [], `ls -a shows nothing of it: ${lsA(m.mnt).join(' ')}`);
  t.equal(await h.send('read'), `${sha(data)} ${data.length}`, 'read through the fd: the right bytes');
  t.equal(await h.send('write 4096 written after rm -rf'), 'wrote 20');
  data.write('written after rm -rf', 4096);
  t.equal(await h.send('read'), `${sha(data)} ${data.length}`, 'the write reads back');
  t.equal(await h.send('sync'), 'synced', 'fsync through the fd');
  t.equal(await h.send(`truncate ${8 * MiB}`), 'truncated', 'ftruncate through the fd');
  t.equal(await h.send('read'), `${sha(data.subarray(0, 8 * MiB))} ${8 * MiB}`, 'reads the truncated file');
  // fstat(2) is a getattr by node id without the file handle: the inode lives while the kernel knows it.
  t.equal(await h.send('stat'), `nlink 0 size ${8 * MiB}`, 'fstat after its directory is gone');
  // An open handle is not a lease (issue 12): the truncated half comes back at once; the unlinked
  // file's other half is held until the last close (POSIX).
  const held = await dfUntil(m.mnt, (d) => d0.used - d.used >= 8 * 1024 - 256);
  t.ok(d0.used - held.used >= 8 * 1024 - 256 && d0.used - held.used <= 8 * 1024 + 256,
    `the truncated 8 MiB came back, the other 8 MiB are held while open (${held.used} KiB used, ${d0.used} before)`);
  t.equal(await h.send('close'), 'closed');
  await h.exited();
  const d1 = await dfUntil(m.mnt, (d) => d0.used - d.used >= 16 * 1024 - 256);
  t.ok(d0.used - d1.used >= 16 * 1024 - 256, `space returned to df at the last close (${d0.used - d1.used} KiB)`);
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
});

t.test('touch -m, touch -a, touch, cp -a: each time as asked', async (t) => {
  const m = await freshMount(t);
  const f = join(m.mnt, 'f');
  fs.writeFileSync(f, 'x');
  let r = run('touch', ['-d', '@1500000000.250', f]);
  t.equal(r.status, 0, r.summary);
  t.match(fs.statSync(f), { atimeMs: 1_500_000_000_250, mtimeMs: 1_500_000_000_250 }, 'touch -d sets both');
  r = run('touch', ['-m', '-d', '@1000000000', f]);
  t.equal(r.status, 0, r.summary);
  t.match(fs.statSync(f), { atimeMs: 1_500_000_000_250, mtimeMs: 1e12 }, 'touch -m: mtime only');
  r = run('touch', ['-a', '-d', '@1200000000', f]);
  t.equal(r.status, 0, r.summary);
  t.match(fs.statSync(f), { atimeMs: 1.2e12, mtimeMs: 1e12 }, 'touch -a: atime only');
  const before = Date.now();
  r = run('touch', [f]);
  t.equal(r.status, 0, r.summary);
  const s = fs.statSync(f);
  t.ok(s.atimeMs >= before - 1000 && s.atimeMs <= Date.now() + 1000, `touch: atime now (${s.atimeMs}, ${before})`);
  t.ok(s.mtimeMs >= before - 1000 && s.mtimeMs <= Date.now() + 1000, `touch: mtime now (${s.mtimeMs})`);
  // utimensat with UTIME_NOW for one time and UTIME_OMIT for the other
  r = run('touch', ['-m', '-d', '@1000000000', f]);
  const a = fs.statSync(f).atimeMs;
  r = run('touch', ['-m', f]);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(f).atimeMs, a, 'touch -m (now): atime left alone');
  t.ok(fs.statSync(f).mtimeMs >= before - 1000, 'touch -m (now): mtime now');

  // cp -a in and out keeps both times of every file
  const host = tempDir(t);
  const w = sh(`
    mkdir ${host}/src
    for i in 1 2 3; do echo $i > ${host}/src/f$i; done
    touch -m -d @1111111111 ${host}/src/f1
    touch -a -d @1222222222 ${host}/src/f1
    touch -d '2003-04-05 06:07:08.5' ${host}/src/f2
    touch -m -d @1333333333 ${host}/src
  `);
  t.equal(w.status, 0, w.summary);
  // as cp sees them (its reads may then move the host's atimes)
  const srcStat = new Map(['f1', 'f2', 'f3'].map((n) => [n, fs.statSync(join(host, 'src', n))]));
  let cp = run('cp', ['-a', join(host, 'src'), join(m.mnt, 'copy')]);
  t.equal(cp.status, 0, cp.summary);
  for (const name of ['f1', 'f2', 'f3']) {
    const src = srcStat.get(name)!;
    const mid = fs.statSync(join(m.mnt, 'copy', name));
    t.equal(mid.mtimeMs, Math.floor(src.mtimeMs), `cp -a in keeps ${name}'s mtime`);
    t.equal(mid.atimeMs, Math.floor(src.atimeMs), `cp -a in keeps ${name}'s atime`);
  }
  // (reading them for the copy out may move their atimes on the mount, as relatime does on ext4)
  cp = run('cp', ['-a', join(m.mnt, 'copy'), join(host, 'back')]);
  t.equal(cp.status, 0, cp.summary);
  for (const name of ['f1', 'f2', 'f3']) {
    const back = fs.statSync(join(host, 'back', name));
    t.equal(Math.floor(back.mtimeMs), Math.floor(srcStat.get(name)!.mtimeMs), `and out again: ${name}'s mtime`);
  }
  t.equal(fs.statSync(join(m.mnt, 'copy')).mtimeMs, 1_333_333_333_000, "cp -a keeps the directory's mtime");
});
