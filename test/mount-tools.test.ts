// Everyday tools through the real kernel FUSE mount: cp, mv, ln, stat, dd,
// truncate, sparse files, rm -r, find, xattrs, O_APPEND, chmod/chown/touch.
import t from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { stats } from './helpers/control.js';
import { errCode, freshMount, run, sh, tempDir } from './helpers/mount.js';

const m = await freshMount(t, { size: '256M' });
const M = m.mnt;

/** stat(1) with a format, on one path. */
function stat(fmt: string, path: string): string {
  const r = run('stat', ['-c', fmt, path]);
  if (r.status !== 0) throw new Error(r.summary);
  return r.stdout.trim();
}

t.test('cp -a a tree in and back out: diff -r equal', async (t) => {
  const host = tempDir(t);
  const src = join(host, 'src');
  const r = sh(`
    mkdir -p ${src}/a/b/c ${src}/empty
    head -c 100000 /dev/urandom > ${src}/a/rand
    head -c 3000000 /dev/urandom > ${src}/a/b/big
    printf 'hello\\n' > ${src}/a/b/c/hello.txt
    : > ${src}/zero-length
    ln -s b/c/hello.txt ${src}/a/link
    ln ${src}/a/rand ${src}/a/rand-hard
    chmod 0640 ${src}/a/rand
    chmod 0700 ${src}/a/b/c
    touch -d '2001-02-03 04:05:06' ${src}/a/b/c/hello.txt
    touch -a -d '2011-12-13 14:15:16' ${src}/a/b/c/hello.txt
    cp -a ${src} ${M}/tree
  `);
  t.equal(r.status, 0, r.summary);
  // Before anything reads the copy (a read updates atime under relatime, as on ext4).
  t.equal(stat('%X', join(M, 'tree/a/b/c/hello.txt')), String(Date.parse('2011-12-13T14:15:16') / 1000), 'cp -a keeps atime');
  const back = sh(`cp -a ${M}/tree ${host}/back && diff -r ${src} ${host}/back`);
  t.equal(back.status, 0, back.summary);
  t.equal(stat('%a', join(M, 'tree/a/rand')), '640', 'mode kept');
  t.equal(stat('%a', join(M, 'tree/a/b/c')), '700', 'dir mode kept');
  t.equal(stat('%h', join(M, 'tree/a/rand')), '2', 'cp -a keeps the hard link');
  t.equal(fs.readlinkSync(join(M, 'tree/a/link')), 'b/c/hello.txt');
  t.equal(stat('%Y', join(M, 'tree/a/b/c/hello.txt')), stat('%Y', join(src, 'a/b/c/hello.txt')), 'cp -a keeps mtime (atime differs)');
  t.equal(stat('%Y', join(host, 'back/a/b/c/hello.txt')), stat('%Y', join(src, 'a/b/c/hello.txt')), 'mtime round trip');
  t.equal(stat('%s', join(M, 'tree/a/b/big')), '3000000');
});

t.test('mv: rename over a file, over an empty dir, across dirs, onto a non-empty dir', async (t) => {
  const d = join(M, 'mv');
  fs.mkdirSync(d);
  fs.mkdirSync(join(d, 'x'));
  fs.mkdirSync(join(d, 'y'));
  fs.writeFileSync(join(d, 'a'), 'AAA');
  fs.writeFileSync(join(d, 'b'), 'BBB');
  const inoA = fs.statSync(join(d, 'a')).ino;

  let r = run('mv', ['-f', join(d, 'a'), join(d, 'b')]);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.readFileSync(join(d, 'b'), 'utf8'), 'AAA', 'over a file: content of the source');
  t.equal(fs.statSync(join(d, 'b')).ino, inoA, 'same inode after rename');
  t.equal(errCode(() => fs.statSync(join(d, 'a'))), 'ENOENT', 'source name gone');

  r = run('mv', [join(d, 'b'), join(d, 'x', 'b2')]);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.readFileSync(join(d, 'x', 'b2'), 'utf8'), 'AAA', 'across dirs');
  t.same(fs.readdirSync(d).sort(), ['x', 'y']);

  fs.mkdirSync(join(d, 'src'));
  fs.writeFileSync(join(d, 'src', 'inside'), 'in');
  fs.mkdirSync(join(d, 'emptydst'));
  fs.renameSync(join(d, 'src'), join(d, 'emptydst'));
  t.equal(fs.readFileSync(join(d, 'emptydst', 'inside'), 'utf8'), 'in', 'dir renamed over an empty dir');
  t.equal(errCode(() => fs.statSync(join(d, 'src'))), 'ENOENT');

  // rename(2) of a dir onto a non-empty dir: ext4 says ENOTEMPTY.
  fs.mkdirSync(join(d, 'other'));
  t.equal(errCode(() => fs.renameSync(join(d, 'other'), join(d, 'emptydst'))), 'ENOTEMPTY', 'onto a non-empty dir');
  // file over dir and dir over file
  fs.writeFileSync(join(d, 'f'), 'f');
  t.equal(errCode(() => fs.renameSync(join(d, 'f'), join(d, 'other'))), 'EISDIR', 'file over a dir: EISDIR');
  t.equal(errCode(() => fs.renameSync(join(d, 'other'), join(d, 'f'))), 'ENOTDIR', 'dir over a file: ENOTDIR');
  // a dir into its own subtree
  t.equal(errCode(() => fs.renameSync(join(d, 'emptydst'), join(d, 'emptydst', 'sub'))), 'EINVAL', 'into itself: EINVAL');
  // renaming a dir across parents updates the nlink of both parents
  const before = fs.statSync(join(d, 'y')).nlink;
  fs.renameSync(join(d, 'other'), join(d, 'y', 'other'));
  t.equal(fs.statSync(join(d, 'y')).nlink, before + 1, 'new parent gains a link (..)');
  t.equal(run('mv', ['-T', join(d, 'y', 'other'), join(d, 'x', 'moved')]).status, 0);
  t.ok(fs.statSync(join(d, 'x', 'moved')).isDirectory());
  t.equal(fs.statSync(join(d, 'y')).nlink, before, 'old parent loses it again');
});

t.test('ln: hard links and nlink in stat', async (t) => {
  const d = join(M, 'ln');
  fs.mkdirSync(d);
  fs.writeFileSync(join(d, 'f'), 'data');
  t.equal(stat('%h', join(d, 'f')), '1');
  let r = run('ln', [join(d, 'f'), join(d, 'g')]);
  t.equal(r.status, 0, r.summary);
  r = run('ln', [join(d, 'f'), join(d, 'h')]);
  t.equal(r.status, 0, r.summary);
  t.equal(stat('%h', join(d, 'f')), '3', 'three names');
  t.equal(stat('%i', join(d, 'g')), stat('%i', join(d, 'f')), 'same inode');
  fs.appendFileSync(join(d, 'g'), '+more');
  t.equal(fs.readFileSync(join(d, 'h'), 'utf8'), 'data+more', 'one file under all names');
  fs.unlinkSync(join(d, 'f'));
  t.equal(stat('%h', join(d, 'g')), '2');
  t.equal(errCode(() => fs.linkSync(join(d, 'g'), join(d, 'h'))), 'EEXIST');
  t.equal(errCode(() => fs.linkSync(d, join(d, 'dirlink'))), 'EPERM', 'hard link to a dir: EPERM');
  // directory nlink: 2 + subdirs
  fs.mkdirSync(join(d, 's1'));
  fs.mkdirSync(join(d, 's2'));
  t.equal(stat('%h', d), '4', 'dir nlink = 2 + subdirectories');
});

t.test('ln -s and readlink', async (t) => {
  const d = join(M, 'sym');
  fs.mkdirSync(d);
  fs.writeFileSync(join(d, 'target'), 'T');
  let r = run('ln', ['-s', 'target', join(d, 'rel')]);
  t.equal(r.status, 0, r.summary);
  r = run('ln', ['-s', '/nonexistent/dangling', join(d, 'dangling')]);
  t.equal(r.status, 0, r.summary);
  r = run('readlink', [join(d, 'rel')]);
  t.equal(r.stdout.trim(), 'target');
  t.equal(fs.readFileSync(join(d, 'rel'), 'utf8'), 'T', 'followed');
  t.equal(fs.readlinkSync(join(d, 'dangling')), '/nonexistent/dangling');
  t.equal(stat('%F', join(d, 'rel')), 'symbolic link');
  t.equal(stat('%s', join(d, 'rel')), String('target'.length), 'symlink size = target length');
  const long = 'x/'.repeat(1000) + 'end';
  fs.symlinkSync(long, join(d, 'long'));
  t.equal(fs.readlinkSync(join(d, 'long')), long, 'a 2003-byte target');
  t.equal(errCode(() => fs.readlinkSync(join(d, 'target'))), 'EINVAL', 'readlink of a file: EINVAL');
  // The kernel keeps a symlink's target (cache_symlinks): a path through it asks READLINK once, and a
  // symlink made anew under the same name, or renamed over it, shows its own target.
  const readlinks = (): number => (stats(M) as unknown as { requests: Record<string, number> }).requests.READLINK ?? 0;
  const before = readlinks();
  for (let i = 0; i < 20; i++) fs.readFileSync(join(d, 'rel'));
  t.ok(readlinks() - before <= 1, `20 opens through a symlink: ${readlinks() - before} READLINK`);
  fs.writeFileSync(join(d, 'other'), 'O');
  fs.unlinkSync(join(d, 'rel'));
  fs.symlinkSync('other', join(d, 'rel'));
  t.equal(fs.readFileSync(join(d, 'rel'), 'utf8'), 'O', 'made anew under the same name: its own target');
  fs.symlinkSync('target', join(d, 'rel2'));
  fs.renameSync(join(d, 'rel2'), join(d, 'rel'));
  t.equal(fs.readFileSync(join(d, 'rel'), 'utf8'), 'T', 'renamed over it: the new one\'s target');
});

t.test('stat fields', async (t) => {
  const f = join(M, 'statme');
  fs.writeFileSync(f, Buffer.alloc(10000, 7), { mode: 0o640 });
  const s = fs.statSync(f);
  t.ok(s.isFile());
  t.equal(s.size, 10000);
  t.equal(s.mode & 0o7777, 0o640);
  t.equal(s.nlink, 1);
  t.equal(s.uid, process.getuid!());
  t.ok(s.blocks >= 20, `blocks (${s.blocks}) cover the 10000 bytes`);
  t.ok(s.ino > 1, 'inode number');
  t.equal(fs.statSync(M).ino, 1, 'the root is inode 1 (use_ino)');
  const r = run('ls', ['-i', f]);
  t.equal(Number(r.stdout.trim().split(/\s+/)[0]), s.ino, 'ls -i agrees with stat');
  const now = Date.now();
  t.ok(Math.abs(s.mtimeMs - now) < 60_000, 'mtime is now');
  t.ok(Math.abs(s.ctimeMs - now) < 60_000, 'ctime is now');
  const ds = fs.statSync(join(M, 'ln'));
  t.ok(ds.isDirectory());
});

t.test('dd write and read back, cmp equal', async (t) => {
  const host = tempDir(t);
  const r = sh(`
    head -c 20000000 /dev/urandom > ${host}/src
    dd if=${host}/src of=${M}/dd.out bs=1M conv=fsync status=none
    dd if=${M}/dd.out of=${host}/back bs=64k status=none
    cmp ${host}/src ${host}/back
    cmp ${host}/src ${M}/dd.out
    # unaligned writes in the middle of the file
    dd if=/dev/urandom of=${host}/patch bs=1 count=12345 status=none
    dd if=${host}/patch of=${M}/dd.out bs=1 seek=777777 conv=notrunc status=none
    dd if=${host}/patch of=${host}/src bs=1 seek=777777 conv=notrunc status=none
    cmp ${host}/src ${M}/dd.out
  `);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(join(M, 'dd.out')).size, 20000000);
});

t.test('truncate up and down', async (t) => {
  const f = join(M, 'trunc');
  fs.writeFileSync(f, Buffer.alloc(100000, 0xab));
  let r = run('truncate', ['-s', '50000', f]);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(f).size, 50000, 'down');
  r = run('truncate', ['-s', '300000', f]);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(f).size, 300000, 'up');
  const b = fs.readFileSync(f);
  t.ok(b.subarray(0, 50000).every((x) => x === 0xab), 'kept part intact');
  t.ok(b.subarray(50000).every((x) => x === 0), 'the part cut then grown again reads as zeros');
  // truncate inside a block, then grow: the tail of that block must be zero too
  r = run('truncate', ['-s', '4097', f]);
  t.equal(r.status, 0, r.summary);
  r = run('truncate', ['-s', '8192', f]);
  const c = fs.readFileSync(f);
  t.equal(c.length, 8192);
  t.ok(c.subarray(0, 4097).every((x) => x === 0xab) && c.subarray(4097).every((x) => x === 0), 'partial block zeroed');
  r = run('truncate', ['-s', '0', f]);
  t.equal(fs.statSync(f).size, 0);
  t.equal(fs.statSync(f).blocks, 0, 'no blocks after truncate to 0');
});

t.test('sparse file: write at 1 GiB offset in a 256M pool', async (t) => {
  const f = join(M, 'sparse');
  const r = sh(`printf 'END' | dd of=${f} bs=1 seek=$((1<<30)) conv=notrunc status=none`);
  t.equal(r.status, 0, r.summary);
  const s = fs.statSync(f);
  t.equal(s.size, 2 ** 30 + 3, 'size');
  t.ok(s.blocks * 512 < 4 * 1024 * 1024, `allocated ${s.blocks * 512} bytes only`);
  const du = run('du', ['-k', f]);
  t.ok(Number(du.stdout.split(/\s+/)[0]) < 4096, `du is small: ${du.stdout.trim()}`);
  const fd = fs.openSync(f, 'r');
  const buf = Buffer.alloc(1 << 20, 1);
  fs.readSync(fd, buf, 0, buf.length, 500 * 1024 * 1024);
  t.ok(buf.every((x) => x === 0), 'a hole reads as zeros');
  const end = Buffer.alloc(16, 9);
  const n = fs.readSync(fd, end, 0, 16, 2 ** 30 - 5);
  fs.closeSync(fd);
  t.equal(n, 8);
  t.same([...end.subarray(0, 8)], [0, 0, 0, 0, 0, 0x45, 0x4e, 0x44], 'zeros then END, then EOF');
});

t.test('file larger than 4 GiB (sparse), readable past 4 GiB', async (t) => {
  const f = join(M, 'huge');
  const off = 5 * 2 ** 30 + 12345;
  const fd = fs.openSync(f, 'w');
  const data = Buffer.from('beyond four gibibytes');
  t.equal(fs.writeSync(fd, data, 0, data.length, off), data.length);
  fs.writeSync(fd, Buffer.from('low'), 0, 3, 2 ** 32 - 1);
  fs.closeSync(fd);
  t.equal(fs.statSync(f).size, off + data.length);
  const r = run('dd', [`if=${f}`, 'bs=1', `skip=${off}`, `count=${data.length}`, 'status=none']);
  t.equal(r.stdout, data.toString(), 'read back at 5 GiB by another process');
  const r2 = run('dd', [`if=${f}`, 'bs=1', `skip=${2 ** 32 - 1}`, 'count=3', 'status=none']);
  t.equal(r2.stdout, 'low', 'across the 4 GiB boundary');
  const r3 = sh(`dd if=${f} bs=1M skip=4097 count=1 status=none | tr -d '\\0' | wc -c`);
  t.equal(r3.stdout.trim(), '0', 'a hole past 4 GiB reads zeros');
});

t.test('rm -r and find', async (t) => {
  const r = sh(`
    mkdir -p ${M}/rt/a/b/c ${M}/rt/d
    for i in 1 2 3 4 5; do echo $i > ${M}/rt/a/f$i; echo $i > ${M}/rt/a/b/c/g$i; done
    ln -s f1 ${M}/rt/a/s
    cd ${M}/rt && find . | sort
  `);
  t.equal(r.status, 0, r.summary);
  const expected = ['.', './a', './a/b', './a/b/c', ...[1, 2, 3, 4, 5].map((i) => `./a/b/c/g${i}`), ...[1, 2, 3, 4, 5].map((i) => `./a/f${i}`), './a/s', './d'].sort();
  t.same(r.stdout.trim().split('\n'), expected, 'find lists the whole tree');
  const f2 = run('find', [join(M, 'rt'), '-type', 'f', '-name', 'g*']);
  t.equal(f2.stdout.trim().split('\n').length, 5, 'find -type f -name');
  const f3 = run('find', [join(M, 'rt'), '-type', 'l']);
  t.equal(f3.stdout.trim(), join(M, 'rt/a/s'), 'find -type l');
  const rm = run('rm', ['-r', join(M, 'rt')]);
  t.equal(rm.status, 0, rm.summary);
  t.equal(errCode(() => fs.statSync(join(M, 'rt'))), 'ENOENT', 'gone');
});

t.test('xattrs: setfattr/getfattr user.* round trip', async (t) => {
  const f = join(M, 'xa');
  fs.writeFileSync(f, 'x');
  let r = sh(`setfattr -n user.color -v blue ${f} && setfattr -n user.empty ${f} && setfattr -n user.bin -v 0x00ff10 ${f}`);
  t.equal(r.status, 0, r.summary);
  r = run('getfattr', ['--only-values', '-n', 'user.color', f]);
  t.equal(r.stdout, 'blue', 'value back');
  r = run('getfattr', ['-e', 'hex', '-n', 'user.bin', f]);
  t.match(r.stdout, /user\.bin=0x00ff10/, 'binary value');
  r = run('getfattr', ['-d', '-m', '^user\\.', f]);
  t.match(r.stdout, /user\.color="blue"/);
  t.match(r.stdout, /user\.empty/);
  r = run('getfattr', ['-n', 'user.missing', f]);
  t.not(r.status, 0);
  t.match(r.stderr, /No such attribute/, 'ENODATA for a missing name');
  const big = 'v'.repeat(3000);
  r = run('setfattr', ['-n', 'user.big', '-v', big, f]);
  t.equal(r.status, 0, r.summary);
  r = run('getfattr', ['--only-values', '-n', 'user.big', f]);
  t.equal(r.stdout, big, 'a 3000-byte value');
  r = sh(`setfattr -x user.color ${f} && getfattr -d ${f}`);
  t.equal(r.status, 0, r.summary);
  t.notMatch(r.stdout, /user\.color/, 'removed');
  r = run('setfattr', ['-x', 'user.color', f]);
  t.match(r.stderr, /No such attribute/, 'removing a missing one: ENODATA');
  r = run('setfattr', ['-n', 'bogus.name', '-v', '1', f]);
  t.not(r.status, 0, 'an unknown namespace is refused');
  r = run('setfattr', ['-n', 'security.foo', '-v', '1', f]);
  t.match(r.stderr, /Operation not supported/, 'security.* is refused (getxattr could never show it)');
  // cp -a sets its source's access ACL on each file: root's minimal one (owner rwx, group r-x, others none) is a mode.
  const acl = (entries: string) => `0x02000000${entries}`;
  const minimal = acl('01000700ffffffff' + '04000500ffffffff' + '20000000ffffffff');
  r = sh(`setfattr -n system.posix_acl_access -v ${minimal} ${f} && stat -c %a ${f}`);
  t.equal(r.stdout.trim(), '750', "root's minimal ACL applied as the mode, seen at once");
  r = run('setfattr', ['-n', 'system.posix_acl_access', '-v', acl('01000700ffffffff' + '02000400fe000000' + '04000500ffffffff' + '10000500ffffffff' + '20000000ffffffff'), f]);
  t.match(r.stderr, /Operation not supported/, 'an ACL with a named user is refused');
  // on a directory too
  r = sh(`setfattr -n user.d -v dv ${M} && getfattr --only-values -n user.d ${M}`);
  t.equal(r.stdout, 'dv', 'xattr on the root dir');
});

t.test('O_APPEND: echo >> twice', async (t) => {
  const f = join(M, 'append');
  const r = sh(`echo one > ${f}; echo two >> ${f}; echo three >> ${f}`);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.readFileSync(f, 'utf8'), 'one\ntwo\nthree\n');
  const fd = fs.openSync(f, 'a');
  fs.writeSync(fd, 'four\n', 0); // position ignored with O_APPEND
  fs.closeSync(fd);
  t.equal(fs.readFileSync(f, 'utf8'), 'one\ntwo\nthree\nfour\n', 'O_APPEND ignores the position');
});

t.test('chmod, chown, touch -d', async (t) => {
  const f = join(M, 'meta');
  fs.writeFileSync(f, 'm');
  let r = run('chmod', ['4751', f]);
  t.equal(r.status, 0, r.summary);
  t.equal(stat('%a', f), '4751', 'chmod incl. setuid bit');
  r = run('chown', ['1234:5678', f]);
  t.equal(r.status, 0, r.summary);
  t.equal(stat('%u:%g', f), '1234:5678', 'chown');
  r = run('chown', [':99', f]);
  t.equal(stat('%u:%g', f), '1234:99', 'chgrp only');
  r = run('touch', ['-d', '2020-01-02 03:04:05.678 UTC', f]);
  t.equal(r.status, 0, r.summary);
  const s = fs.statSync(f);
  t.equal(s.mtimeMs, Date.UTC(2020, 0, 2, 3, 4, 5, 678), 'mtime as set, ms precision');
  t.equal(s.atimeMs, Date.UTC(2020, 0, 2, 3, 4, 5, 678), 'atime as set');
  // One time alone (UTIME_OMIT for the other): SETATTR with only that time's bit.
  r = run('touch', ['-m', '-d', '@1000000000', f]);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(f).mtimeMs, 1e12, 'touch -m');
  t.equal(fs.statSync(f).atimeMs, Date.UTC(2020, 0, 2, 3, 4, 5, 678), 'atime left alone');
  r = run('touch', ['-a', '-d', '@1100000000', f]);
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(f).atimeMs, 1.1e12, 'touch -a');
  t.equal(fs.statSync(f).mtimeMs, 1e12, 'mtime left alone');
  const before = fs.statSync(f).ctimeMs;
  await new Promise((res) => setTimeout(res, 20));
  fs.chmodSync(f, 0o600);
  t.ok(fs.statSync(f).ctimeMs > before, 'chmod updates ctime');
  const mt = fs.statSync(f).mtimeMs;
  fs.writeFileSync(f, 'changed');
  t.ok(fs.statSync(f).mtimeMs > mt, 'a write updates mtime');
});

t.test('unmount is clean', async (t) => {
  const res = await m.stop();
  t.equal(res.umount.status, 0, res.umount.summary);
  t.equal(res.code, 0, 'daemon exit code 0');
});
