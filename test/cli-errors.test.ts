// A user's mistakes, command by command: each gets one message (and maybe a
// hint), the documented exit code, never "internal error" or a stack; the
// reason is said where the user looks, and hints can be pasted as printed.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { CLI, cli, cliAsync, eachAtOnce, makePool, mountPool, ROOT, run, tempDir, type RunResult } from './helpers/mount.js';

const MiB = 1024 * 1024;

/** One message: "daxvm: ..." or commander's "error: ...", then at most a hint or a usage pointer; no stack. */
function oneMessage(t: Test, r: RunResult, what: string): void {
  const lines = r.stderr.split('\n').filter(l => l !== '' && !/^daxvm: warning:/.test(l));
  t.notMatch(r.stderr, /internal error|^\s+at .*:\d+:\d+\)?$/m, `${what}: no internal error, no stack\n${r.summary}`);
  t.match(lines[0] ?? '', /^(daxvm|error): /, `${what}: a message\n${r.summary}`);
  t.ok(lines.length <= 2 && lines.slice(1).every(l => /^(hint: |\(run )/.test(l)), `${what}: one message and at most a hint\n${r.summary}`);
}

/** The CLI as nobody, with no home (NODE_OPTIONS dropped: tap's loader would write its files as nobody). */
const asNobody = (args: string[], env: Record<string, string> = {}): RunResult =>
  run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'XDG_DATA_HOME', '-u', 'XDG_RUNTIME_DIR', '-u', 'NODE_OPTIONS',
    'HOME=/nonexistent', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, CLI, ...args]);

t.test('every command, wrong arguments: one message, the documented exit code', async (t) => {
  const dir = tempDir(t);
  const pool = join(dir, 'p.daxvm');
  t.equal(cli(['mkfs', pool, '--size', '32M']).status, 0);
  const junk = join(dir, 'junk');
  fs.writeFileSync(junk, Buffer.alloc(MiB, 7), { mode: 0o600 });
  const truncated = join(dir, 'truncated');
  fs.writeFileSync(truncated, fs.readFileSync(pool).subarray(0, 100_000), { mode: 0o600 });
  // A FIFO as the pool: an open would wait for a writer forever; refused at once instead.
  const fifo = join(dir, 'fifo');
  t.equal(run('mkfifo', ['-m', '600', fifo]).status, 0);
  const cases: Array<[string[], number, RegExp]> = [
    [['mkfs', join(dir, 'x'), '--size', '10'], 2, /at least 16 MiB/],
    [['mkfs', join(dir, 'x'), '--size', '9000T'], 2, /'9000T' is too large/],
    [['mkfs', join(dir, 'x'), '--size', '8P'], 2, /'8P' is too large \(a size must be below 8 PiB/],
    [['mkfs', dir, '--force'], 1, /is a directory/],
    [['mkfs', join(dir, 'no', 'such', 'dir', 'p')], 1, /does not exist/],
    [['mkfs', join(junk, 'p')], 1, /not a directory/],
    [['mkfs', pool], 1, /already exists/],
    [['mkfs', join(dir, 'g'), '--group', 'no-such-group-here'], 1, /no group/],
    [['mount', dir, join(dir, 'm1')], 32, /is a directory, not a pool file/],
    [['mount', join(dir, 'missing'), join(dir, 'm1')], 32, /does not exist/],
    [['mount', pool, pool], 32, /not a directory/],
    [['mount', pool, join(dir, 'm1'), '-o', 'bogus'], 2, /unknown mount option/],
    [['mount', pool, join(dir, 'm1'), '-o', 'remount,ro'], 32, /remount is not supported/],
    [['umount', dir], 32, /not mounted/],
    [['fsck', join(dir, 'missing')], 8, /could not complete: pool .* does not exist/],
    [['fsck', junk], 8, /could not complete: .* is not a daxvm pool/],
    [['fsck', truncated], 8, /could not complete: .* is truncated/],
    [['fsck', dir], 8, /is a directory/],
    [['fsck', fifo], 8, /is a FIFO, not a pool file/],
    [['fsck', '/dev/null'], 8, /\/dev\/null is a character device, not a pool file/],
    [['info', fifo], 8, /is a FIFO, not a pool file/],
    [['mount', fifo, join(dir, 'm1')], 32, /is a FIFO, not a pool file/],
    [['info', dir], 2, /is a directory, not a daxvm pool or mount/],
    [['info', join(dir, 'missing')], 8, /does not exist/],
    [['info', junk], 8, /not a daxvm pool/],
    [['doctor', dir], 2, /not a daxvm mount, nor a pool file/],
    [['doctor', join(dir, 'missing')], 2, /not a daxvm mount, nor a pool file/],
    [['doctor', junk], 2, /not a daxvm mount, nor a pool file: not a daxvm pool/],
    [['age', dir], 2, /not a daxvm mount/],
    [['age', dir, '--fill', '200%'], 2, /--fill/],
    [['bench', 'nosuch'], 2, /no bench named/],
    [['bench', 'read', '--mnt', dir], 2, /not a daxvm mount/],
    [['bench', 'read', '--sizes', 'abc'], 2, /not a size/],
    [['bench', 'read', '--quick', '--json', dir], 2, /--json .* is a directory/],
    [['bench', 'read', '--from', junk], 2, /--from .*junk: not JSON\n/],
    [['bench', 'read', '--from', join(dir, 'missing.json')], 2, /--from .*missing\.json: ENOENT\n/],
    [['bench', 'read', '--quick', '--chart', join(dir, 'no', 'c.svg')], 2, /--chart .*: no directory/],
    [['bench', 'read', '--from', join(ROOT, 'docs', 'figures', 'read.json'), '--chart', join(dir, 'no', 'c.svg')], 2, /--chart .*: no directory/],
    [['install-helper', '--dir', join(dir, 'missing')], 1, /cannot write/],
    [['run', '--', join(dir, 'no-such-program')], 127, /no-such-program: command not found/],
    [['run'], 2, /missing required argument 'program'/],
    [['preload-path', 'extra'], 2, /too many arguments/],
    [['umount'], 2, /missing required argument 'mountpoint'/],
    [['test-crash', '-w', 'nosuch'], 2, /no workload/],
    [['test-fuzz', '-n', '-1'], 2, /--cases/],
    [['test-load', '--only', 'bogus'], 2, /no such part/],
    [['test-crash', '-n', '5', '--scratch', join(dir, 'missing', 's')], 2, /--scratch .*: cannot make a directory there \(ENOENT\)/],
    [['test-fuzz', '-n', '2', '--scratch', join(dir, 'missing', 's')], 2, /--scratch .*: cannot make a directory there \(ENOENT\)/],
    [['test-load', '--only', 'fill', '--scratch', join(dir, 'missing', 's')], 2, /--scratch .*: cannot make a directory there \(ENOENT\)/],
  ];
  // No case depends on another (none succeeds in making anything): a few at a time.
  const results = await eachAtOnce(cases, 4, ([args]) => cliAsync(args));
  for (const [i, [args, code, message]] of cases.entries()) {
    const what = `daxvm ${args.join(' ').replaceAll(dir, 'DIR')}`;
    const r = results[i]!;
    t.equal(r.status, code, `${what}: exit ${code}\n${r.summary}`);
    t.match(r.stderr, message, `${what}: says why`);
    oneMessage(t, r, what);
  }
  const said = (args: string[]): string => results[cases.findIndex(([a]) => a.join(' ') === args.join(' '))]!.stderr;
  t.notMatch(said(['fsck', '/dev/null']), /chmod/, 'no chmod advice for a device');
  t.notMatch(said(['fsck', junk]), /hint: .*fsck/, 'fsck of junk does not send the user to fsck');
  const open = join(dir, 'readable-junk');
  fs.writeFileSync(open, Buffer.alloc(MiB, 7), { mode: 0o644 });
  const loose = cli(['info', open]);
  t.equal(loose.status, 8, loose.summary);
  t.notMatch(loose.stderr, /warning|chmod/, 'a readable file that is no pool: no advice about its mode, only that it is no pool');
  const d = cli(['doctor', truncated]);
  t.equal(d.status, 1, `doctor of a truncated pool: a problem, exit 1\n${d.summary}`);
  t.match(d.stdout, /^problem: .* is truncated: 100000 bytes.*truncate -s/m, 'doctor says why and the fix');
  t.notOk(fs.existsSync(join(dir, 'no')), 'mkfs made no directories');
  t.notOk(fs.existsSync(join(dir, 'm1')), 'no mount point left behind');
});

t.test('a failed mount removes the mount point it made, and only that', async (t) => {
  const dir = tempDir(t);
  const junk = join(dir, 'junk');
  fs.writeFileSync(junk, Buffer.alloc(32 * MiB, 7), { mode: 0o600 });
  const r = cli(['mount', junk, join(dir, 'a', 'b', 'mnt')]);
  t.equal(r.status, 32, r.summary);
  t.match(r.stderr, /not a daxvm pool/, 'the daemon\'s reason');
  t.notOk(fs.existsSync(join(dir, 'a')), 'the directories it made are gone');
  fs.mkdirSync(join(dir, 'keep'));
  t.equal(cli(['mount', junk, join(dir, 'keep')]).status, 32);
  t.ok(fs.existsSync(join(dir, 'keep')), 'a mount point that was there stays');
});

t.test('fsck of a mounted pool names the mount; a damaged primary superblock suggests the repair, not mkfs', async (t) => {
  const { pool } = makePool(t, { size: '32M' });
  const m = await mountPool(t, pool);
  let r = cli(['fsck', pool]);
  t.equal(r.status, 8, r.summary);
  t.match(r.stderr, new RegExp(`is mounted on ${m.mnt}`), 'where it is mounted');
  t.match(r.stderr, new RegExp(`hint: unmount it first: .*umount ${m.mnt}`), 'and the fix');
  r = cli(['mount', '-o', 'remount,ro', m.mnt]);
  t.equal(r.status, 32, r.summary);
  t.match(r.stderr, new RegExp(`remount is not supported by daxvm\nhint: .*umount ${m.mnt} && .*mount ${pool} ${m.mnt} -o ro\n`), 'remount: refused, with the two commands for this mount');
  // As mount(8) asks it (mount -o remount,ro MNT): the pool, the mount point, and the kernel's options besides.
  r = run('sh', [join(ROOT, 'mount', 'mount.fuse.daxvm'), pool, m.mnt, '-o', 'remount,ro,nosuid,nodev,relatime,user_id=0,group_id=0,default_permissions']);
  t.equal(r.status, 32, r.summary);
  t.match(r.stderr, new RegExp(`hint: .*umount ${m.mnt} && .*mount ${pool} ${m.mnt} -o ro,nosuid,nodev,relatime,default_permissions\n`),
    'through mount(8): a hint that can be pasted (no user_id=, which daxvm mount refuses)');
  fs.writeFileSync(join(m.mnt, 'still-rw'), 'x');
  r = asNobody(['umount', m.mnt]);
  t.equal(r.status, 32, r.summary);
  t.match(r.stderr, new RegExp(`^daxvm: ${m.mnt} was mounted by another user \\(uid 0\\): only that user or root can unmount it\n$`), 'another user\'s mount: says whose, not "no daemon"');
  t.ok(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${m.mnt} `), 'and leaves it mounted');
  await m.stop();

  const fd = fs.openSync(pool, 'r+');
  fs.writeSync(fd, Buffer.alloc(4096), 0, 4096, 0);
  fs.closeSync(fd);
  for (const cmd of ['info', 'mount']) {
    r = cli(cmd === 'mount' ? ['mount', pool, join(tempDir(t), 'mnt')] : ['info', pool]);
    t.equal(r.status, cmd === 'mount' ? 32 : 8, r.summary);
    t.match(r.stderr, /backup superblock is good/, `${cmd}: says the backup is good`);
    t.match(r.stderr, /hint: .*fsck --repair/, `${cmd}: suggests fsck --repair`);
    t.notMatch(r.stderr, /mkfs/, `${cmd}: never mkfs`);
  }
  t.equal(cli(['fsck', '--repair', pool]).status, 1, 'the repair works');
  t.equal(cli(['info', pool]).status, 0, 'and info reads the pool again');
});

t.test('as a user without a home, or without /dev/fuse: one line that says why', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o777);
  let r = asNobody(['mount'], { TMPDIR: dir });
  t.equal(r.status, 32, r.summary);
  t.match(r.stderr, /cannot create \/nonexistent\/.* for the default pool/, 'no home: says so');
  oneMessage(t, r, 'mount with no home');

  const fuseOpen = run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', '-c', 'exec 3<>/dev/fuse']).status === 0;
  if (fuseOpen) {
    t.comment('nobody can open /dev/fuse here: the refused mount is not tried');
    return;
  }
  const pool = join(dir, 'p.daxvm');
  t.equal(asNobody(['mkfs', pool, '--size', '32M']).status, 0);
  const mnt = join(dir, 'mnt');
  r = asNobody(['mount', pool, mnt], { TMPDIR: dir });
  t.equal(r.status, 32, r.summary);
  t.match(r.stderr, /failed to open \/dev\/fuse: Permission denied/, 'libfuse\'s own words');
  t.notOk(fs.existsSync(mnt), 'the mount point it made is gone');
  r = asNobody(['bench', 'read', '--quick'], { TMPDIR: dir });
  t.equal(r.status, 1, r.summary);
  t.match(r.stderr, /^daxvm: bench: cannot mount its temporary pool: .*failed to open \/dev\/fuse: Permission denied/, 'bench: the daemon\'s reason for its temporary mount');
  oneMessage(t, r, 'bench without FUSE');
  r = asNobody(['doctor', '--json'], { TMPDIR: dir });
  t.equal(r.status, 1, 'doctor: exit 1 without FUSE');
  const j = JSON.parse(r.stdout) as { fuse: boolean; fuseError: string };
  t.same([j.fuse, j.fuseError], [false, 'EACCES'], 'doctor: FUSE no for this user');
});

t.test('hints are what the user can paste where they are', async (t) => {
  const dir = tempDir(t);
  const missing = join(dir, 'missing');
  const hint = (env: Record<string, string | undefined>, cwd: string): string =>
    cli(['info', missing], { cwd, env: { PATH: '/usr/bin:/bin', ...env } }).stderr;
  t.match(hint({}, dir), new RegExp(`hint: create it with: node ${CLI.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} mkfs`), 'outside a project: node and the full path');
  t.match(hint({}, ROOT), /hint: create it with: npx daxvm mkfs/, 'in the repo: npx daxvm');
  t.match(hint({ npm_command: 'exec' }, dir), /hint: create it with: npx daxvm mkfs/, 'started by npx: npx daxvm');
  const bin = join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(CLI, join(bin, 'daxvm'));
  t.match(hint({ PATH: `${bin}:/usr/bin:/bin` }, dir), /hint: create it with: daxvm mkfs/, 'installed on PATH: daxvm');
  t.match(cli(['info', dir], { cwd: dir, env: { PATH: '/usr/bin:/bin' } }).stderr, /mount point of a daxvm mount/, 'prose is left alone');
});

t.test('fstab: nofail with a missing pool is quiet; --version; info names the knobs as their files', async (t) => {
  const dir = tempDir(t);
  const mnt = join(dir, 'mnt');
  const r = run('sh', [join(ROOT, 'mount', 'mount.fuse.daxvm'), join(dir, 'missing'), mnt, '-o', 'rw,nofail']);
  t.same([r.status, r.stdout, r.stderr], [0, '', ''], `mount.fuse.daxvm with nofail and no pool: exit 0, silent\n${r.summary}`);
  t.notOk(fs.existsSync(mnt), 'and nothing made');
  const v = cli(['--version']);
  t.equal(v.status, 0);
  t.match(v.stdout, /^daxvm \d+\.\d+\.\d+\nnode v\d+\.\d+\.\d+\nlibfuse 3\.\d+(\.\d+)?\npool format \d+\n$/, `daxvm, node, libfuse and the pool format\n${v.stdout}`);
  const { pool } = makePool(t, { size: '32M' });
  const info = cli(['info', pool]);
  for (const knob of ['page_tables_on', 'msync', 'zeroout_blocks', 'zombie_max_pages']) t.match(info.stdout, new RegExp(`knob ${knob} `), `info: knob ${knob}`);
  t.notMatch(info.stdout, /pageTablesOn|zerooutBlocks/, 'not the code\'s names');
  const d = cli(['doctor', pool]);
  t.match(d.stdout, /fallback: page_tables_on is 0 .*MAP_DAXVM takes the vanilla path/, 'doctor: page_tables_on 0 is a fallback');
  t.notMatch(d.stdout, /no fallbacks/, 'never "no fallbacks" then');
  const none = cli(['doctor']);
  if (!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(' /mnt/nvmm1 ')) {
    t.match(none.stdout, /nothing mounted on \/mnt\/nvmm1/, 'doctor with no argument looks at /mnt/nvmm1 and says it is empty');
  }
});
