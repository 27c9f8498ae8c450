// Whose file is it: ownership and mode rules that depend on the caller, run as
// root, as `nobody` and as a user the test creates (with a supplementary
// group), on an allow_other daxvm mount and on a loop-mounted ext4, with the
// same script: every answer (exit status, error text, owner:group and mode)
// must be ext4's. Issue 15, part 1.
import t from 'tap';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { release } from 'node:os';
import { freshMount, run, sh, tempDir } from './helpers/mount.js';
import { stats } from './helpers/control.js';

const USER = 'daxvm-cred';
const GROUP = 'daxvm-credg';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'credentials-probes.sh');

function ensureUser(): string | undefined {
  if (run('id', [USER]).status === 0 && run('getent', ['group', GROUP]).status === 0) return undefined;
  const r = sh(`getent group ${GROUP} >/dev/null || groupadd ${GROUP}
id ${USER} >/dev/null 2>&1 || useradd -M -N -g users -s /bin/sh ${USER}
usermod -g ${USER} -G ${GROUP} ${USER} 2>/dev/null || { getent group ${USER} >/dev/null || groupadd ${USER}; usermod -g ${USER} -G ${GROUP} ${USER}; }`);
  return r.status === 0 ? undefined : r.summary;
}

t.test('credentials: every rule answers as ext4, as root, nobody and a user with a supplementary group', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root (loop-mounted ext4, other users)', () => undefined);
  const err = ensureUser();
  t.equal(err, undefined, 'the test user and group exist');
  if (err) return;

  // ext4 on a loop device, as the reference.
  const dir = tempDir(t, 'daxvm-cred-');
  fs.chmodSync(dir, 0o711);
  const img = join(dir, 'ext4.img');
  const extMnt = join(dir, 'ext4');
  fs.mkdirSync(extMnt);
  t.equal(sh(`truncate -s 32M ${img} && mkfs.ext4 -q -F ${img} && mount -o loop ${img} ${extMnt}`).status, 0, 'ext4 mounted');
  t.teardown(() => { run('umount', ['-l', extMnt]); });
  const probe = (root: string) => run('bash', [SCRIPT, root], { env: { ...process.env, U: USER, G: GROUP } });
  const ext = probe(extMnt);

  const m = await freshMount(t, { mount: { opts: ['allow_other'] } });
  fs.chmodSync(m.dir, 0o711);
  fs.chmodSync(join(m.mnt, '..'), 0o755);
  const dax = probe(m.mnt);

  const lines = (s: string) => s.split('\n').filter(Boolean);
  const want = lines(ext.stdout);
  const got = lines(dax.stdout);
  t.ok(want.length > 40, `the probes ran on ext4 (${want.length} lines)\n${ext.stderr}`);
  for (let i = 0; i < Math.max(want.length, got.length); i++) t.equal(got[i], want[i], want[i] ?? got[i] ?? '');
  // A few absolutes, so that a change on both sides still shows.
  t.match(got.join('\n'), new RegExp(`  a ${USER}:${USER} -rw-r--r--`), "a new file is the caller's");
  t.match(got.join('\n'), new RegExp(`  sg/d ${USER}:${GROUP} drwxr-sr-x`), 'group and setgid from a setgid parent');
  t.match(got.join('\n'), /user chown to nobody: FAIL Operation not permitted/, 'only root chowns');
  t.match(got.join('\n'), /nobody sets explicit times on u: FAIL Operation not permitted/, 'explicit times: owner only');
  t.match(got.join('\n'), /nobody touches u \(UTIME_NOW\): ok/, 'UTIME_NOW: any writer');
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
});

t.test('HANDLE_KILLPRIV_V2: no GETXATTR security.capability before every WRITE of a plain file', async (t) => {
  const [major = 0, minor = 0] = release().split('.').map(Number);
  if (major < 5 || (major === 5 && minor < 11)) return t.skip(`kernel ${release()} predates HANDLE_KILLPRIV_V2 (5.11)`, () => undefined);
  const m = await freshMount(t);
  const file = join(m.mnt, 'w');
  fs.writeFileSync(file, '');
  const requests = () => (stats(m.mnt) as unknown as { requests: Record<string, number> }).requests;
  const before = requests();
  const fd = fs.openSync(file, 'a');
  for (let i = 0; i < 50; i++) fs.writeSync(fd, Buffer.alloc(4096, i));
  fs.closeSync(fd);
  const after = requests();
  const delta = (op: string) => (after[op] ?? 0) - (before[op] ?? 0);
  t.equal(delta('WRITE'), 50, '50 WRITEs');
  t.ok(delta('GETXATTR') <= 1, `at most one GETXATTR for 50 writes (the first write of an inode): ${delta('GETXATTR')}`);
  // A write-only handle is direct_io: tar's two writes of a file, the second starting mid-page, are two WRITEs (the
  // page cache sent the partial page of the second as a WRITE of its own) and no GETXATTR at the first write.
  const mid = requests();
  const wo = fs.openSync(join(m.mnt, 'tar-like'), 'w');
  fs.writeSync(wo, Buffer.alloc(5000, 1));
  fs.writeSync(wo, Buffer.alloc(5000, 2));
  fs.closeSync(wo);
  const end = requests();
  t.equal((end.WRITE ?? 0) - (mid.WRITE ?? 0), 2, 'a write-only handle: one WRITE per write(2)');
  t.equal((end.GETXATTR ?? 0) - (mid.GETXATTR ?? 0), 0, 'a write-only handle: no GETXATTR security.capability');
  t.same(fs.readFileSync(join(m.mnt, 'tar-like')), Buffer.concat([Buffer.alloc(5000, 1), Buffer.alloc(5000, 2)]), 'and its bytes');
  // A setuid file is checked at every write (the kernel never marks it S_NOSEC); root's writes keep the bit.
  fs.chmodSync(file, 0o4755);
  fs.appendFileSync(file, 'x');
  t.equal(fs.statSync(file).mode & 0o7777, 0o4755, "root's write keeps setuid (CAP_FSETID), as on ext4");
  const st = await m.stop();
  t.equal(st.code, 0, 'clean unmount');
});
