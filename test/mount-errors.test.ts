// errno values as ext4 gives them, through Node fs calls on the mount (they run
// in libuv's threadpool of THIS process; the daemon is a child process), names
// of 255/256 bytes, -o ro, and permission checks with default_permissions.
import t from 'tap';
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import { errCode, freshMount, makePool, mountPool, run } from './helpers/mount.js';

t.test('errno values', async (t) => {
  const m = await freshMount(t);
  const M = m.mnt;
  fs.mkdirSync(join(M, 'd'));
  fs.writeFileSync(join(M, 'd', 'f'), 'f');
  fs.writeFileSync(join(M, 'file'), 'x');

  t.equal(errCode(() => fs.statSync(join(M, 'nope'))), 'ENOENT', 'stat of a missing name');
  t.equal(errCode(() => fs.readFileSync(join(M, 'nope', 'deeper'))), 'ENOENT', 'missing parent');
  t.equal(errCode(() => fs.unlinkSync(join(M, 'nope'))), 'ENOENT', 'unlink missing');
  t.equal(errCode(() => fs.rmdirSync(join(M, 'nope'))), 'ENOENT', 'rmdir missing');
  t.equal(errCode(() => fs.renameSync(join(M, 'nope'), join(M, 'x'))), 'ENOENT', 'rename missing');
  t.equal(errCode(() => fs.mkdirSync(join(M, 'd'))), 'EEXIST', 'mkdir existing');
  t.equal(errCode(() => fs.mkdirSync(join(M, 'file'))), 'EEXIST', 'mkdir over a file');
  t.equal(errCode(() => fs.openSync(join(M, 'file'), 'wx')), 'EEXIST', 'O_CREAT|O_EXCL existing');
  t.equal(errCode(() => fs.symlinkSync('t', join(M, 'file'))), 'EEXIST', 'symlink over a file');
  t.equal(errCode(() => fs.rmdirSync(join(M, 'd'))), 'ENOTEMPTY', 'rmdir non-empty');
  t.equal(errCode(() => fs.readFileSync(join(M, 'd'))), 'EISDIR', 'read a dir');
  t.equal(errCode(() => fs.openSync(join(M, 'd'), 'w')), 'EISDIR', 'open a dir for writing');
  t.equal(errCode(() => fs.unlinkSync(join(M, 'd'))), 'EISDIR', 'unlink a dir (Linux: EISDIR)');
  t.equal(errCode(() => fs.rmdirSync(join(M, 'file'))), 'ENOTDIR', 'rmdir a file');
  t.equal(errCode(() => fs.readdirSync(join(M, 'file'))), 'ENOTDIR', 'readdir a file');
  t.equal(errCode(() => fs.statSync(join(M, 'file', 'x'))), 'ENOTDIR', 'a file as a path component');
  t.equal(errCode(() => fs.mkdirSync(join(M, 'file', 'x'))), 'ENOTDIR', 'mkdir under a file');
  t.equal(errCode(() => fs.rmdirSync(M + '/d/.')), 'EINVAL', 'rmdir of "." : EINVAL');
  t.equal(errCode(() => fs.truncateSync(join(M, 'd'), 0)), 'EISDIR', 'truncate a dir');
  // still healthy
  t.equal(fs.readFileSync(join(M, 'd', 'f'), 'utf8'), 'f');
});

t.test('names: 255 bytes ok, 256 bytes ENAMETOOLONG', async (t) => {
  const m = await freshMount(t);
  const M = m.mnt;
  const n255 = 'n'.repeat(255);
  const n256 = 'n'.repeat(256);
  fs.writeFileSync(join(M, n255), 'long name');
  t.equal(fs.readFileSync(join(M, n255), 'utf8'), 'long name', '255-byte file name');
  fs.mkdirSync(join(M, 'D'.repeat(255)));
  t.ok(fs.readdirSync(M).includes(n255), 'listed');
  t.equal(errCode(() => fs.writeFileSync(join(M, n256), 'x')), 'ENAMETOOLONG', 'create 256');
  t.equal(errCode(() => fs.mkdirSync(join(M, n256))), 'ENAMETOOLONG', 'mkdir 256');
  t.equal(errCode(() => fs.statSync(join(M, n256))), 'ENAMETOOLONG', 'lookup 256');
  t.equal(errCode(() => fs.renameSync(join(M, n255), join(M, n256))), 'ENAMETOOLONG', 'rename to 256');
  // multi-byte: 85 x 3-byte chars = 255 bytes ok; 86 = 258 bytes too long
  const u255 = '\u20ac'.repeat(85);
  const u258 = '\u20ac'.repeat(86);
  fs.writeFileSync(join(M, u255), 'euro');
  t.equal(fs.readFileSync(join(M, u255), 'utf8'), 'euro', '255 bytes of UTF-8');
  t.equal(errCode(() => fs.writeFileSync(join(M, u258), 'x')), 'ENAMETOOLONG', '258 bytes of UTF-8');
  // odd but legal bytes in names
  const odd = 'sp ace\ttab\nnewline\u00e9';
  fs.writeFileSync(join(M, odd), 'odd');
  t.ok(fs.readdirSync(M).includes(odd), 'name with space, tab, newline, accent');
});

t.test('-o ro: EROFS on every write', async (t) => {
  const p = makePool(t);
  const rw = await mountPool(t, p);
  fs.writeFileSync(join(rw.mnt, 'keep'), 'kept');
  fs.mkdirSync(join(rw.mnt, 'dir'));
  const st = await rw.stop();
  t.equal(st.code, 0, 'clean unmount before the ro mount');

  const ro = await mountPool(t, p, { opts: ['ro'] });
  const M = ro.mnt;
  t.equal(fs.readFileSync(join(M, 'keep'), 'utf8'), 'kept', 'reads work');
  t.equal(errCode(() => fs.writeFileSync(join(M, 'new'), 'x')), 'EROFS', 'create');
  t.equal(errCode(() => fs.writeFileSync(join(M, 'keep'), 'x')), 'EROFS', 'open for writing');
  t.equal(errCode(() => fs.mkdirSync(join(M, 'd2'))), 'EROFS', 'mkdir');
  t.equal(errCode(() => fs.unlinkSync(join(M, 'keep'))), 'EROFS', 'unlink');
  t.equal(errCode(() => fs.rmdirSync(join(M, 'dir'))), 'EROFS', 'rmdir');
  t.equal(errCode(() => fs.renameSync(join(M, 'keep'), join(M, 'k2'))), 'EROFS', 'rename');
  t.equal(errCode(() => fs.chmodSync(join(M, 'keep'), 0o600)), 'EROFS', 'chmod');
  t.equal(errCode(() => fs.truncateSync(join(M, 'keep'), 0)), 'EROFS', 'truncate');
  t.equal(errCode(() => fs.symlinkSync('x', join(M, 'l'))), 'EROFS', 'symlink');
  const r = run('setfattr', ['-n', 'user.x', '-v', '1', join(M, 'keep')]);
  t.match(r.stderr, /Read-only file system/, 'setxattr: EROFS');
  const ro2 = await ro.stop();
  t.equal(ro2.code, 0);
  t.equal(fs.readFileSync(join(p.dir, 'pool.daxvm')).length > 0, true);
});

t.test('default_permissions: the kernel checks modes (EACCES)', async (t) => {
  const m = await freshMount(t, { mount: { opts: ['allow_other', 'default_permissions'] } });
  const M = m.mnt;
  // the temp dir above the mount point is 0700: let `nobody` reach the mount
  fs.chmodSync(dirname(M), 0o755);
  fs.chmodSync(M, 0o755);
  fs.writeFileSync(join(M, 'secret'), 'top secret', { mode: 0o600 });
  fs.chmodSync(join(M, 'secret'), 0o600);
  fs.writeFileSync(join(M, 'public'), 'hello', { mode: 0o644 });
  fs.chmodSync(join(M, 'public'), 0o644);
  fs.mkdirSync(join(M, 'locked'), { mode: 0o700 });
  fs.chmodSync(join(M, 'locked'), 0o700);
  fs.writeFileSync(join(M, 'locked', 'inner'), 'in');
  const asNobody = (script: string) =>
    run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', script]);

  let r = asNobody(`cat ${M}/public`);
  t.equal(r.stdout, 'hello', 'nobody reads a 0644 file (control)' + (r.status ? `\n${r.summary}` : ''));
  r = asNobody(`cat ${M}/secret`);
  t.not(r.status, 0);
  t.match(r.stderr, /Permission denied/, 'nobody cannot read a 0600 root file: EACCES');
  r = asNobody(`echo x >> ${M}/public`);
  t.match(r.stderr, /Permission denied/, 'nor write a 0644 root file');
  r = asNobody(`ls ${M}/locked`);
  t.match(r.stderr, /Permission denied/, 'nor list a 0700 dir');
  r = asNobody(`cat ${M}/locked/inner`);
  t.match(r.stderr, /Permission denied/, 'nor traverse it');
  r = asNobody(`touch ${M}/newfile`);
  t.match(r.stderr, /Permission denied/, 'nor create in a 0755 root-owned dir');
  r = asNobody(`chmod 777 ${M}/public`);
  t.match(r.stderr, /Operation not permitted/, 'chmod of another user\'s file: EPERM');
  t.equal(fs.readFileSync(join(M, 'secret'), 'utf8'), 'top secret', 'root still reads it');
});
