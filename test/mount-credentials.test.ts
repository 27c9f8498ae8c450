// Whose file is it: ownership and mode rules that depend on the caller, run as
// root, as `nobody` and as a user the test creates (with a supplementary
// group), on an allow_other daxvm mount and on a loop-mounted ext4, with the
// same script: every answer (exit status, error text, owner:group and mode)
// must be ext4's. Issue 15, part 1.
import t from 'tap';
import fs from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshMount, run, sh, tempDir } from './helpers/mount.js';

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
