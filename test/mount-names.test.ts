// Names through the mount: every byte value POSIX allows, names that are not
// UTF-8, the length limits. The errno in each case is what ext4 (4 KiB
// blocks, Linux 6.18) answers for the same call: we ran these probes on a
// loop-mounted ext4 and on daxvm and compared.
import t, { type Test } from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { errCode, freshMount, fsck, mountPool, type Mounted } from './helpers/mount.js';
import { bashBytes, bashWord, bytes, checkDaemon, listHex, runBytes, splitNul, under } from './helpers/hostile.js';

/** Every single-byte name: 0x01..0xff but '/' and '.' (the directory itself). */
const SINGLE = Array.from({ length: 255 }, (_, i) => i + 1).filter((b) => b !== 0x2f && b !== 0x2e);
const hexOf = (names: Buffer[]) => names.map((n) => n.toString('hex')).sort();

async function remount(t: Test, m: Mounted): Promise<Mounted> {
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
  const r = fsck(m.pool);
  t.equal(r.status, 0, `daxvm fsck clean\n${r.summary}`);
  return mountPool(t, m.pool);
}

t.test('every byte value: files, directories and symlink targets named by one byte', async (t) => {
  let m: Mounted = await freshMount(t);
  const files = join(m.mnt, 'files');
  const dirs = join(m.mnt, 'dirs');
  const links = join(m.mnt, 'links');
  for (const d of [files, dirs, links]) fs.mkdirSync(d);
  for (const b of SINGLE) {
    const n = Buffer.from([b]);
    fs.writeFileSync(under(files, n), Buffer.from([b, b]));
    fs.mkdirSync(under(dirs, n));
    fs.symlinkSync(bytes('../files/', n), under(links, n));
  }
  const expected = hexOf(SINGLE.map((b) => Buffer.from([b])));
  t.same(listHex(files), expected, 'readdir gives back exactly the 253 names, byte for byte');
  t.same(listHex(dirs), expected, 'and as directories');
  t.same(listHex(links), expected, 'and as symlinks');
  let wrong = SINGLE.filter((b) => {
    const n = Buffer.from([b]);
    const st = fs.statSync(under(files, n));
    return !st.isFile() || st.size !== 2 || !fs.statSync(under(dirs, n)).isDirectory() ||
      !fs.readlinkSync(under(links, n), { encoding: 'buffer' }).equals(bytes('../files/', n)) ||
      !fs.readFileSync(under(links, n)).equals(Buffer.from([b, b]));
  });
  t.same(wrong, [], 'stat, readlink, and reading through each link (the kernel follows our target bytes)');

  // rename to a two-byte name, link back to the one-byte name, unlink the other
  for (const b of SINGLE) {
    const one = under(files, Buffer.from([b]));
    const two = under(files, Buffer.from([b, b]));
    fs.renameSync(one, two);
    fs.linkSync(two, one);
    fs.unlinkSync(two);
  }
  t.same(listHex(files), expected, 'after rename, link and unlink of every name');
  wrong = SINGLE.filter((b) => fs.statSync(under(files, Buffer.from([b]))).nlink !== 1);
  t.same(wrong, [], 'one link each');

  // the tools
  const found = runBytes('find', [files, '-mindepth', '1', '-print0']);
  t.equal(found.status, 0, found.stderr);
  t.same(hexOf(splitNul(found.stdout).map((p) => p.subarray(files.length + 1))), expected, 'find -print0');
  const ls = runBytes('ls', ['-A', '--zero', dirs]);
  t.same(hexOf(splitNul(ls.stdout)), expected, 'ls --zero');
  const cp = bashBytes(`cd ${m.mnt} && cp -a files copy && mv copy moved && cmp <(cd files && cat -- *) <(cd moved && cat -- *)`);
  t.equal(cp.status, 0, `cp -a, mv, and the same bytes in both\n${cp.stderr}`);
  t.same(listHex(join(m.mnt, 'moved')), expected, 'cp -a copied every name');
  const rm = runBytes('rm', ['-rf', join(m.mnt, 'moved')]);
  t.equal(rm.status, 0, rm.stderr);
  t.notOk(fs.existsSync(join(m.mnt, 'moved')), 'rm -rf removed them all');
  checkDaemon(t, m, 'after every byte value');

  m = await remount(t, m);
  t.same(listHex(join(m.mnt, 'files')), expected, 'every name survives unmount and mount');
  t.same(listHex(join(m.mnt, 'dirs')), expected);
  t.ok(fs.readFileSync(under(join(m.mnt, 'links'), Buffer.from([0xff]))).equals(Buffer.from([0xff, 0xff])), 'a link still leads to its file');
  const st = await m.stop();
  t.equal(st.code, 0);
});

t.test('names that are not UTF-8, and other awkward bytes', async (t) => {
  let m: Mounted = await freshMount(t);
  const odd = [
    [0x80], [0xff, 0xfe], [0xfe, 0xff], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80],
    [0xf4, 0x90, 0x80, 0x80], [0xef, 0xbf, 0xbd], // overlong, a surrogate, past U+10FFFF, U+FFFD itself
  ].map((a) => Buffer.from(a)).concat(
    ['a\nb', 'tab\there', ' lead', 'trail ', 'two  spaces', 'back\\slash', '-rf', '--', '-', '\x01ctl', 'del\x7f', '*', '?', '$HOME', '"q\'']
      .map((s) => Buffer.from(s)),
  );
  const dir = join(m.mnt, 'odd');
  fs.mkdirSync(dir);
  for (const n of odd) fs.writeFileSync(under(dir, n), n);
  t.same(listHex(dir), hexOf(odd), 'readdir: each name exactly, none collapsed into U+FFFD');
  t.same(odd.filter((n) => !fs.readFileSync(under(dir, n)).equals(n)), [], 'each file holds its own name');

  // xattrs on them, and attribute names that are not UTF-8 either (setfattr/getfattr with raw-byte words)
  const script = odd.map((n, i) => `setfattr -n user.k -v v${i} -- ${bashWord(under(dir, n))}`).join('\n') +
    `\nsetfattr -n ${bashWord(bytes('user.', [0xff, 0x80]))} -v raw -- ${bashWord(under(dir, odd[0]!))}` +
    '\n' + odd.map((n) => `getfattr --only-values -n user.k -- ${bashWord(under(dir, n))}; echo`).join('\n') +
    `\ngetfattr --only-values -n ${bashWord(bytes('user.', [0xff, 0x80]))} -- ${bashWord(under(dir, odd[0]!))}; echo` +
    `\ngetfattr -d -m - -- ${bashWord(under(dir, odd[0]!))}`;
  const x = bashBytes(script);
  t.equal(x.status, 0, x.stderr);
  const lines = x.stdout.toString('latin1').split('\n');
  t.same(lines.slice(0, odd.length), odd.map((_, i) => `v${i}`), 'setxattr and getxattr on every odd name');
  t.equal(lines[odd.length], 'raw', 'an attribute named by raw bytes');
  t.ok(x.stdout.includes(bytes('user.', [0xff, 0x80], '="raw"')), 'listxattr gives its name back byte for byte');

  // symlinks whose targets are the odd names; rename, link, unlink
  for (const [i, n] of odd.entries()) fs.symlinkSync(n, under(dir, bytes(`link${i}`)));
  t.same(odd.filter((n, i) => !fs.readFileSync(under(dir, bytes(`link${i}`))).equals(n)), [], 'each link leads to its odd-named file');
  for (const n of odd) {
    fs.renameSync(under(dir, n), under(dir, bytes(n, '.renamed')));
    fs.linkSync(under(dir, bytes(n, '.renamed')), under(dir, bytes(n, [0xff])));
    fs.unlinkSync(under(dir, bytes(n, '.renamed')));
    fs.renameSync(under(dir, bytes(n, [0xff])), under(dir, n));
  }
  t.same(odd.filter((n) => !fs.readFileSync(under(dir, n)).equals(n)), [], 'rename, link, unlink, rename back');
  checkDaemon(t, m, 'after odd names');

  m = await remount(t, m);
  const d2 = join(m.mnt, 'odd');
  t.same(listHex(d2), hexOf([...odd, ...odd.map((_, i) => bytes(`link${i}`))]), 'the names survive unmount and mount');
  const g = bashBytes(`getfattr --only-values -n ${bashWord(bytes('user.', [0xff, 0x80]))} -- ${bashWord(under(d2, odd[0]!))}`);
  t.equal(g.stdout.toString(), 'raw', 'and the raw-byte attribute name');
  const rm = runBytes('rm', ['-rf', d2]);
  t.equal(rm.status, 0, rm.stderr);
  const st = await m.stop();
  t.equal(st.code, 0);
  t.equal(fsck(m.pool).status, 0, 'fsck clean at the end');
});

t.test('lengths: NAME_MAX is 255 bytes, a symlink target 4095, a path 4095', async (t) => {
  let m: Mounted = await freshMount(t);
  const M = m.mnt;
  const at = (n: Buffer) => under(M, n);
  const ok255 = [Buffer.alloc(255, 0x61), bytes('é'.repeat(127), 'a'), Buffer.alloc(255, 0xff), bytes('€'.repeat(85))];
  for (const n of ok255) fs.writeFileSync(at(n), n.subarray(0, 4));
  t.same(listHex(M).filter((h) => h.length === 510), hexOf(ok255), '255-byte names: ASCII, 2- and 3-byte UTF-8, raw 0xff');

  const long = Buffer.concat([Buffer.alloc(254, 0xff), Buffer.from('é')]); // 256 bytes, 255 characters
  const base = ok255[0]!;
  const cases: Array<[string, () => unknown]> = [
    ['create', () => fs.writeFileSync(at(long), 'x')],
    ['open O_CREAT|O_EXCL', () => fs.openSync(at(long), 'wx')],
    ['mkdir', () => fs.mkdirSync(at(long))],
    ['symlink', () => fs.symlinkSync('t', at(long))],
    ['link', () => fs.linkSync(at(base), at(long))],
    ['rename', () => fs.renameSync(at(base), at(long))],
    ['lookup (stat)', () => fs.statSync(at(long))],
    ['unlink', () => fs.unlinkSync(at(long))],
    ['rmdir', () => fs.rmdirSync(at(long))],
  ];
  for (const [what, fn] of cases) t.equal(errCode(fn), 'ENAMETOOLONG', `256 bytes (255 characters): ${what}`);
  // Past FUSE's own 1024-byte limit the kernel answers before we see it: the same errno.
  for (const len of [1000, 1025, 4000]) t.equal(errCode(() => fs.statSync(at(Buffer.alloc(len, 0x62)))), 'ENAMETOOLONG', `a ${len}-byte name`);

  const target = Buffer.concat([Buffer.alloc(4000, 0xfe), Buffer.from('/'.repeat(94)), Buffer.from([0x80])]);
  t.equal(target.length, 4095);
  fs.symlinkSync(target, at(bytes('t4095')));
  t.ok(fs.readlinkSync(at(bytes('t4095')), { encoding: 'buffer' }).equals(target), 'a 4095-byte target of raw bytes, read back exactly');
  t.equal(fs.lstatSync(at(bytes('t4095'))).size, 4095, 'its size');
  t.equal(errCode(() => fs.symlinkSync(Buffer.alloc(4096, 0x62), at(bytes('t4096')))), 'ENAMETOOLONG', 'a 4096-byte target');
  t.equal(errCode(() => fs.statSync(at(bytes('t4095')))), 'ENAMETOOLONG', 'following it: its 4000-byte component is too long (as ext4)');

  // One path of 4096+ bytes in one syscall: the kernel refuses it (PATH_MAX counts the NUL).
  const deep = Buffer.from(M + '/' + 'a/'.repeat(2100));
  t.equal(errCode(() => fs.statSync(deep)), 'ENAMETOOLONG', 'a 4200-byte path');
  const slashes = (total: number) => Buffer.concat([Buffer.from(M + '/'), Buffer.alloc(total - M.length - 2, 0x2f), Buffer.from('x')]);
  t.equal(errCode(() => fs.mkdirSync(slashes(4096))), 'ENAMETOOLONG', 'a 4096-byte path (no room for its NUL)');
  t.equal(errCode(() => fs.mkdirSync(slashes(4095))), 'no error', 'a 4095-byte path works');
  fs.rmdirSync(join(M, 'x'));
  checkDaemon(t, m, 'after the limits');

  m = await remount(t, m);
  t.same(listHex(m.mnt).filter((h) => h.length === 510), hexOf(ok255), '255-byte names survive unmount and mount');
  t.ok(fs.readlinkSync(under(m.mnt, bytes('t4095')), { encoding: 'buffer' }).equals(target), 'and the 4095-byte target');
  const st = await m.stop();
  t.equal(st.code, 0);
});
