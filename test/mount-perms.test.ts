// A pool readable by others exposes every file (issue 16): mkfs makes pools
// 0600 (0660 with --group), whatever the file was before; mount refuses a
// loose pool (exit 32, the fix in the message) unless -o allow_loose_pool;
// fsck, info and doctor warn; `.daxvm/pool` and the shared memory are
// readable as the pool is.
// Users and a group are made for the group test and removed after it.
import t from 'tap';
import type { Test } from 'tap';
import fs from 'node:fs';
import { join } from 'node:path';
import { logFilePath } from '../src/fuse/runtime.js';
import { sharedPath } from '../src/core/format/shared.js';
import { cli, isMounted, mountPool, ROOT, run, sh, tempDir } from './helpers/mount.js';

const mode = (p: string) => fs.statSync(p).mode & 0o7777;

t.test('truncate -s, then mkfs --force: the pool becomes 0600 and the caller\'s', async (t) => {
  const dir = tempDir(t);
  const pool = join(dir, 'pool');
  let r = sh(`umask 022; truncate -s 64M ${pool}; chown nobody ${pool}`);
  t.equal(r.status, 0, r.summary);
  t.equal(mode(pool), 0o644, 'truncate made it 0644 (owned by nobody)');
  r = cli(['mkfs', '--force', pool]); // no --size: the file's own, as mkfs.ext4
  t.equal(r.status, 0, r.summary);
  t.equal(fs.statSync(pool).size, 64 * 1024 * 1024, 'the pool keeps the size truncate gave the file');
  t.equal(mode(pool), 0o600, 'mkfs --force: 0600');
  t.equal(fs.statSync(pool).uid, 0, 'owned by the user who ran mkfs (root)');
  t.match(r.stdout, /mode 0600/, 'mkfs says the mode');
  // A new pool with umask 000 too.
  const p2 = join(dir, 'p2');
  r = sh(`umask 000; node ${join(ROOT, 'dist/cli/main.js')} mkfs --size 64M ${p2}`);
  t.equal(r.status, 0, r.summary);
  t.equal(mode(p2), 0o600, 'umask 000: still 0600');
  // A file too small to be a pool is refused, not grown.
  const small = join(dir, 'small');
  fs.writeFileSync(small, Buffer.alloc(1024 * 1024));
  r = cli(['mkfs', '--force', small]);
  t.equal(r.status, 2, r.summary);
  t.match(r.stderr, /1 MiB, smaller than a pool's 16 MiB/);
  t.match(r.stderr, /--size/);
  t.equal(fs.statSync(small).size, 1024 * 1024, 'left as it was');
});

t.test('a 0644 pool: mount refuses it (exit 32, chmod 600 in the message); fsck, info, doctor warn', async (t) => {
  const dir = tempDir(t);
  const pool = join(dir, 'pool');
  const mnt = join(dir, 'mnt');
  fs.mkdirSync(mnt);
  t.equal(cli(['mkfs', '--size', '64M', pool]).status, 0);
  fs.chmodSync(pool, 0o644);

  let r = cli(['mount', pool, mnt]);
  t.equal(r.status, 32, 'exit 32, as mount(8)\n' + r.summary);
  t.match(r.stderr, /mode 0644: other users can read it/, 'names the problem');
  t.ok(r.stderr.includes(`chmod 600 ${pool}`), 'and the command that fixes it');
  t.notOk(isMounted(mnt), 'nothing mounted');
  r = cli(['mount', pool, mnt, '-f']);
  t.equal(r.status, 32, 'in the foreground too\n' + r.summary);
  t.notOk(isMounted(mnt));

  r = cli(['fsck', pool]);
  t.equal(r.status, 0, 'fsck still checks it\n' + r.summary);
  t.match(r.stderr, /warning: pool .* mode 0644.*chmod 600/, 'fsck warns');
  r = cli(['info', pool, '--json']);
  t.equal(r.status, 0, r.summary);
  t.match(r.stderr, /warning: pool .* mode 0644/, 'info warns');
  t.match(JSON.parse(r.stdout), { poolMode: { mode: '0644', loose: true } }, 'info --json has the mode');
  r = cli(['doctor', pool, '--json']);
  t.equal(r.status, 1, 'doctor POOL: a loose pool is a problem (exit 1)\n' + r.summary);
  const d = JSON.parse(r.stdout) as { pool: { mode: string; loose: boolean }; problems: string[] };
  t.match(d.pool, { mode: '0644', loose: true });
  t.match(d.problems.join('\n'), /chmod 600/);
  r = cli(['doctor', pool]);
  t.match(r.stdout, /pool file mode\s+0644.*OTHER USERS CAN ACCESS IT/);

  fs.chmodSync(pool, 0o600);
  r = cli(['doctor', pool, '--json']);
  t.match(JSON.parse(r.stdout), { pool: { mode: '0600', loose: false }, problems: [] }, 'doctor: 0600 is fine');
  r = cli(['fsck', pool]);
  t.notMatch(r.stderr, /warning/, 'no warning once fixed');
});

t.test('-o allow_loose_pool mounts it anyway, with a warning on stderr and in the daemon\'s log', async (t) => {
  const dir = tempDir(t);
  const pool = join(dir, 'pool');
  const mnt = join(dir, 'mnt');
  fs.mkdirSync(mnt);
  t.equal(cli(['mkfs', '--size', '64M', pool]).status, 0);
  fs.chmodSync(pool, 0o644);
  const logPath = logFilePath(mnt);
  fs.rmSync(logPath, { force: true });
  t.teardown(() => {
    if (isMounted(mnt)) cli(['umount', mnt]);
    fs.rmSync(logPath, { force: true });
  });
  const r = cli(['mount', pool, mnt, '-o', 'noatime,allow_loose_pool']);
  t.equal(r.status, 0, r.summary);
  t.match(r.stderr, /warning: pool .* mode 0644.*mounted anyway \(-o allow_loose_pool\)/, 'daxvm mount warns');
  t.ok(isMounted(mnt), 'mounted');
  t.match(fs.readFileSync(logPath, 'utf8'), /warning: pool .* mode 0644.*allow_loose_pool/, 'the daemon logs it');
  t.equal(fs.statSync(join(mnt, '.daxvm', 'pool')).mode & 0o777, 0o444, '.daxvm/pool follows the pool: 0444');
  const u = cli(['umount', mnt]);
  t.equal(u.status, 0, u.summary);
});

/** A group and two users, one in it, one not; removed at teardown. */
function makeUsers(t: Test): { group: string; gid: number; inside: string; outside: string } {
  const tag = `dxe${process.pid % 100000}`;
  const group = `${tag}g`;
  const inside = `${tag}i`;
  const outside = `${tag}o`;
  t.teardown(() => {
    run('userdel', [inside]);
    run('userdel', [outside]);
    run('groupdel', [group]);
  });
  for (const [cmd, args] of [
    ['groupadd', [group]],
    ['useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', '-G', group, inside]],
    ['useradd', ['-M', '-N', '-s', '/usr/sbin/nologin', outside]],
  ] as const) {
    const r = run(cmd, [...args]);
    if (r.status !== 0) throw new Error(r.summary);
  }
  const gid = Number(run('getent', ['group', group]).stdout.split(':')[2]);
  return { group, gid, inside, outside };
}

const as = (user: string, script: string) =>
  run('setpriv', [`--reuid=${user}`, `--regid=${run('id', ['-g', user]).stdout.trim()}`, '--init-groups', 'sh', '-c', script],
    { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TMPDIR: '/tmp' } }); // not tap's NODE_OPTIONS

t.test('mkfs --group: 0660 for a user in the group; refused for one who is not; the mount shares no more', async (t) => {
  const u = makeUsers(t);
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o777);
  const node = process.execPath;
  const main = join(ROOT, 'dist/cli/main.js');

  let r = as(u.outside, `${node} ${main} mkfs --size 64M --group ${u.group} ${dir}/out.pool`);
  t.equal(r.status, 1, 'not in the group: refused\n' + r.summary);
  t.match(r.stderr, new RegExp(`not in group '${u.group}'`), 'with a clear message');
  t.notOk(fs.existsSync(join(dir, 'out.pool')), 'and no pool made');

  const pool = join(dir, 'in.pool');
  r = as(u.inside, `${node} ${main} mkfs --size 64M --group ${u.group} ${pool}`);
  t.equal(r.status, 0, r.summary);
  const st = fs.statSync(pool);
  t.equal(st.mode & 0o7777, 0o660, '0660');
  t.equal(st.uid, Number(run('id', ['-u', u.inside]).stdout), 'owned by its maker');
  t.equal(st.gid, u.gid, 'group set on the file');

  r = cli(['mkfs', '--force', '--size', '64M', '--group', u.group, join(dir, 'root.pool')]);
  t.equal(r.status, 0, 'root may name any group\n' + r.summary);
  t.equal(mode(join(dir, 'root.pool')), 0o660);

  // Mounted (a 0660 pool is not loose), shared with other users: the group reads .daxvm/pool, others get EACCES.
  const m = await mountPool(t, pool, { opts: ['allow_other'] });
  fs.chmodSync(join(m.mnt, '..'), 0o755);
  fs.chmodSync(m.mnt, 0o755);
  fs.writeFileSync(join(m.mnt, '.daxvm', 'page_tables_on'), '1');
  fs.writeFileSync(join(m.mnt, 'public'), Buffer.alloc(8192, 7), { mode: 0o644 });
  fs.chmodSync(join(m.mnt, 'public'), 0o644);
  const dpool = join(m.mnt, '.daxvm', 'pool');
  const pst = fs.statSync(dpool);
  t.equal(pst.mode & 0o777, 0o440, '.daxvm/pool: 0440');
  t.equal(pst.gid, u.gid, 'group of the pool');
  r = as(u.inside, `cat ${dpool}`);
  t.equal(r.stdout.trim(), pool, 'a user of the group reads it\n' + r.summary);
  r = as(u.outside, `cat ${dpool}`);
  t.match(r.stderr, /Permission denied/, 'others: EACCES\n' + r.summary);
  // The shared memory the daemon publishes (lease table, namespace) is no more open than the pool.
  const big = fs.statSync(pool, { bigint: true });
  for (const kind of ['leases', 'ns'] as const) {
    const shm = sharedPath(big, kind);
    const s = fs.statSync(shm);
    t.equal(s.mode & 0o777, 0o660, `${kind}: 0660, as the pool`);
    t.same([s.uid, s.gid], [st.uid, st.gid], `${kind}: the pool's owner and group`);
    r = as(u.outside, `head -c 1 ${shm} > /dev/null`);
    t.match(r.stderr, /Permission denied/, `${kind}: others get EACCES\n` + r.summary);
    r = as(u.inside, `head -c 1 ${shm} > /dev/null`);
    t.equal(r.status, 0, `${kind}: the group reads it\n` + r.summary);
  }
  // The library, as a user outside: the vanilla path, reading only what the mount lets it read.
  const script = `
    import { mmap, MAP_DAXVM } from ${JSON.stringify(join(ROOT, 'dist/lib/index.js'))};
    const v = mmap(${JSON.stringify(join(m.mnt, 'public'))}, { flags: MAP_DAXVM });
    console.log(JSON.stringify({ mode: v.mode, reason: v.fallbackReason, byte: v.buffer[100] }));`;
  r = as(u.outside, `${node} --input-type=module -e '${script.replace(/'/g, "'\\''")}'`);
  t.equal(r.status, 0, r.summary);
  const out = JSON.parse(r.stdout || '{}') as { mode: string; reason: string; byte: number };
  t.equal(out.mode, 'vanilla', 'outside the group: vanilla');
  t.equal(out.byte, 7);
  t.match(out.reason, /no access to the pool file/, 'because the pool is not readable');
  t.notMatch(out.reason, /ppt|root=|block/, 'the reason tells nothing of the pool\'s contents');
  r = as(u.inside, `${node} --input-type=module -e '${script.replace(/'/g, "'\\''")}'`);
  t.equal(r.status, 0, r.summary);
  t.equal((JSON.parse(r.stdout || '{}') as { mode: string }).mode, 'attached', 'in the group: the direct path\n' + r.stdout);
  await m.stop();
});
