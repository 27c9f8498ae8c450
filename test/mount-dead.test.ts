// A daemon that dies says why (issue 12, point 4): its log gets a line for
// each signal and exception and one at every exit; a SIGKILLed daemon
// leaves a dead mount that `daxvm info` and `daxvm mount` recognise, explain
// (the log's last lines) and know how to clear.
import t from 'tap';
import type { Test } from 'tap';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkfs } from '../src/fs/index.js';
import { logFilePath, pidFilePath, readPidFile } from '../src/fuse/runtime.js';
import { cli, isMounted, NODE, ROOT, sh, sleep, tempDir } from './helpers/mount.js';

/** A pool and a mount point; the mount (background, logging to the runtime dir) is cleared at teardown. */
function setup(t: Test): { pool: string; mnt: string; logPath: string } {
  const dir = tempDir(t);
  const pool = join(dir, 'pool');
  const mnt = join(dir, 'mnt');
  fs.mkdirSync(mnt);
  mkfs(pool, { size: 64 << 20, mode: 0o600 }); // what `daxvm mkfs --size 64M` makes, without a node start
  const logPath = logFilePath(mnt);
  fs.rmSync(logPath, { force: true });
  t.teardown(() => {
    if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt]);
    const pid = readPidFile(mnt);
    if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(logPath, { force: true });
    fs.rmSync(pidFilePath(mnt), { force: true });
  });
  return { pool, mnt, logPath };
}

async function until(cond: () => boolean, ms = 15_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(50);
  return cond();
}

const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };

t.test('SIGTERM: the daemon logs the signal and why it exits', async (t) => {
  const { pool, mnt, logPath } = setup(t);
  const r = cli(['mount', pool, mnt]);
  t.equal(r.status, 0, r.summary);
  const pid = readPidFile(mnt)!;
  t.ok(pid, 'pid file');
  process.kill(pid, 'SIGTERM');
  t.ok(await until(() => !alive(pid) && !isMounted(mnt)), 'daemon gone, mount gone');
  const log = fs.readFileSync(logPath, 'utf8');
  t.match(log, new RegExp(`daemon ${pid} received SIGTERM: unmounting`), 'the signal is logged');
  t.match(log, new RegExp(`daemon ${pid} exits \\(code 0\\): received SIGTERM`), 'and the exit, with its reason');
  t.equal(cli(['fsck', pool]).status, 0, 'pool clean');
});

t.test('fusermount -u under the daemon: the exit line says the mount went away', async (t) => {
  const { pool, mnt, logPath } = setup(t);
  t.equal(cli(['mount', pool, mnt]).status, 0);
  const pid = readPidFile(mnt)!;
  t.equal(spawnSync('fusermount', ['-u', mnt]).status, 0);
  t.ok(await until(() => !alive(pid)), 'daemon exits');
  t.match(fs.readFileSync(logPath, 'utf8'), new RegExp(`daemon ${pid} exits \\(code 0\\): the mount is gone`));
});

t.test('SIGKILL: info and mount recognise the dead mount, quote the log, and the clearing command works', async (t) => {
  const { pool, mnt, logPath } = setup(t);
  t.equal(cli(['mount', pool, mnt]).status, 0);
  const pid = readPidFile(mnt)!;
  process.kill(pid, 'SIGKILL');
  t.ok(await until(() => !alive(pid)), 'daemon killed');
  t.ok(isMounted(mnt), 'the kernel still lists the mount');
  t.match(sh(`stat -f ${mnt} || true`).stderr, /Transport endpoint is not connected/, 'a dead mount (control)');

  let r = cli(['info', mnt]);
  t.equal(r.status, 0, 'info still reads the pool\n' + r.summary);
  t.match(r.stderr, /is a dead daxvm mount: its daemon \(pid \d+\) is gone \(transport endpoint is not connected\)/, 'info: dead');
  t.match(r.stderr, /no exit line: it was killed outright/, 'says what the missing exit line means');
  t.ok(r.stderr.includes(`last lines of ${logPath}:`), 'where the log is');
  t.match(r.stderr, /daxvm mount .*pool/, 'and quotes it');
  t.ok(r.stderr.includes(`clear it with: fusermount -uz ${mnt}`), 'the clearing command');
  t.match(r.stdout, /mounted on\s+.*DEAD/, 'the table says it too');
  r = cli(['info', mnt, '--json']);
  t.equal(JSON.parse(r.stdout).mountState, 'dead');

  r = cli(['mount', pool, mnt]);
  t.equal(r.status, 32, 'mount onto it, no terminal: refused\n' + r.summary);
  t.match(r.stderr, /dead daxvm mount/);
  t.ok(r.stderr.includes(`clear it with: fusermount -uz ${mnt}`), 'with the command');
  t.match(r.stderr, /--clear-dead/, 'and the flag');

  const clear = spawnSync('sh', ['-c', `fusermount -uz ${mnt}`], { encoding: 'utf8' });
  t.equal(clear.status, 0, clear.stderr);
  t.notOk(isMounted(mnt), 'the command clears it');
  r = cli(['mount', pool, mnt]);
  t.equal(r.status, 0, 'and the pool mounts again\n' + r.summary);

  // Once more, cleared by the flag.
  const pid2 = readPidFile(mnt)!;
  process.kill(pid2, 'SIGKILL');
  t.ok(await until(() => !alive(pid2)));
  r = cli(['mount', '--clear-dead', pool, mnt]);
  t.equal(r.status, 0, '--clear-dead clears and mounts\n' + r.summary);
  t.match(r.stderr, /clearing it \(--clear-dead\)/);
  t.equal(sh(`ls -a ${mnt}`).status, 0, 'a live mount');
  t.equal(cli(['umount', mnt]).status, 0);
  t.equal(cli(['fsck', pool]).status, 0, 'fsck clean after two kills (recovery at mount)');
});

t.test('the exit report: an uncaught exception with its stack, ENOSPC with the host figures', async (t) => {
  const dir = tempDir(t);
  const script = (code: string) => `
    import { installExitReport } from ${JSON.stringify(join(ROOT, 'dist/fuse/exit-report.js'))};
    installExitReport({ pool: ${JSON.stringify(join(dir, 'pool'))}, mountpoint: '/nowhere' });
    setTimeout(() => { const e = new Error('boom'); ${code} throw e; }, 1);`;
  let r = spawnSync(NODE[0]!, [...NODE.slice(1), '--input-type=module', '-e', script('')], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(r.stderr, /daemon \d+ uncaught exception: Error: boom\n\s+at /, 'the stack');
  t.match(r.stderr, /daemon \d+ exits \(code 1\): uncaught exception: boom/, 'the exit line');
  r = spawnSync(NODE[0]!, [...NODE.slice(1), '--input-type=module', '-e', script("e.code = 'ENOSPC';")], { encoding: 'utf8' });
  t.match(r.stderr, /ENOSPC: the host file system holding .* has [\d.]+ MiB available of [\d.]+ MiB/, 'ENOSPC: the host figures');
  t.match(r.stderr, /exits \(code 1\): uncaught exception \(ENOSPC\)/);
});
