/**
 * Faults under load, CI form (`daxvm test-load` is the long form): three
 * rounds of the daemon SIGKILLed under fio and the metadata client, one
 * pool filled up by three writers, four concurrent clients for six
 * seconds, all through real mounts. And proof that the metadata check
 * sees a tree its log does not allow.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { checkMetaTree, parseMetaLog } from '../src/reliability/load-meta-check.js';
import type { LoadResult } from '../src/reliability/load.js';
import { contentSeed } from '../src/reliability/load-meta-model.js';
import { patternAt } from '../src/reliability/load-pattern.js';
import { cliAsync, eachAtOnce } from './helpers/mount.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    c.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

t.test('kills under fio and metadata load, a pool filled up, concurrent clients: no failure', async (t) => {
  const keep = t.testdir();
  const r = await cli(['test-load', '--kill-rounds', '3', '--fill-rounds', '1', '--host-full-rounds', '0', '--clients', '4', '--minutes', '0.1', '--seed', '1', '--keep', keep, '--json']);
  const lines = r.stderr.trim().split('\n');
  t.comment(lines.filter((l) => /^(kill|fill|clients|load)/.test(l)).join('\n'));
  t.equal(r.status, 0, `exit 0\n${r.stderr.slice(-3000)}`);
  t.equal(lines[lines.length - 1], 'load rounds: 5 run, 0 failed', 'the closing line');
  const res = JSON.parse(r.stdout) as LoadResult;
  t.equal(res.failed, 0, res.failures.map((f) => `${f.part} ${f.seed}: ${f.problem}\n  ${f.replay}`).join('\n') || 'no failure');
  t.equal(res.kill.length, 3, 'three kill rounds');
  for (const k of res.kill) {
    t.ok(k.durableOps >= 6 && k.metaFsyncs > 0, `kill round ${k.round}: ${k.metaFsyncs} fsyncs made ${k.durableOps} metadata operations durable, all found after recovery`);
  }
  // A kill may come before fio's first write on a loaded machine, not in all three rounds.
  const fioBytes = res.kill.reduce((n, k) => n + k.fioBytesVerified, 0);
  t.ok(fioBytes > 0, `fio's completed writes verified after recovery: ${fioBytes} bytes (${res.kill.map((k) => k.fioWrites).join(', ')} writes)`);
  const f = res.fill[0];
  t.ok(f && Object.values(f.enospc).some((n) => n > 0), `the writers met ENOSPC (${JSON.stringify(f?.enospc)})`);
  t.ok(f && f.bytesVerified > 40 << 20, `${f?.bytesVerified} bytes written until the 64 MiB pool was full, all read back`);
  t.ok(f && f.freeAfter >= f.freeBefore - (1 << 20), `the space came back: ${f?.freeBefore} free before, ${f?.freeAfter} after the deletes`);
  const c = res.clients;
  const ops = Object.values(c?.ops ?? {}).reduce((n, v) => n + v, 0);
  t.ok(c && ops > 500 && c.filesRead > 50, `4 clients: ${ops} operations, ${c?.filesRead} files read whole`);
  t.ok(c && c.filesAtEnd > 0, `${c?.filesAtEnd} names verified by the final walk`);
  t.notOk(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes('daxvm-load-'), 'no mount of the load test left behind');
});

t.test('the metadata check sees a tree that its log does not allow', async (t) => {
  // The metadata client on a plain host directory (no mount): its log and tree, then damage.
  const dir = t.testdir({ log: '' });
  const log = path.join(dir, 'log');
  const client = path.join(ROOT, 'src', 'reliability', 'load-meta-client.ts');
  const c = spawn(process.execPath, [...process.execArgv, client, JSON.stringify({ log, seed: 5, mode: 'fill' })], { cwd: dir, stdio: 'ignore' });
  while (parseMetaLog(log).done.length < 150 && c.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  c.kill('SIGTERM');
  await new Promise((r) => c.once('exit', r));
  const ok = checkMetaTree(dir, log, 5, false);
  t.equal(ok.problem, null, `${ok.ops} operations: the tree is their state`);
  t.ok(ok.ops >= 150 && ok.fsyncs > 0, `${ok.ops} operations, ${ok.fsyncs} fsyncs`);

  const { done } = parseMetaLog(log);
  const model = done.map((l) => l.op);
  // A file of the final state, with one byte changed.
  const files = spawnSync('find', ['meta', '-type', 'f', '-size', '+0'], { cwd: dir, encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
  t.ok(files.length > 0, `${files.length} files with data`);
  const victim = path.join(dir, files[0]!);
  const fd = fs.openSync(victim, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, 0);
  fs.writeSync(fd, Buffer.from([b[0]! ^ 0xff]), 0, 1, 0);
  fs.closeSync(fd);
  const bad = checkMetaTree(dir, log, 5, true);
  t.match(bad.problem ?? '', /no state the log allows[\s\S]*is not file \d+'s own/, 'a changed byte is no state of the log, and the check says where');
  fs.writeSync(fs.openSync(victim, 'r+'), b, 0, 1, 0);
  t.equal(checkMetaTree(dir, log, 5, true).problem, null, 'restored: fine again');

  // An fsync'ed file that vanished: not a state after the last fsync.
  const lastSync = model.map((o) => o.op).lastIndexOf('fsync');
  t.ok(lastSync > 0, 'the log has an fsync');
  fs.renameSync(victim, `${victim}.gone`);
  t.match(checkMetaTree(dir, log, 5, true).problem ?? '', /no state the log allows/, 'a file renamed behind the log\'s back is caught');
});

t.test('after a crash, an append that started mid-page may show its first WRITE alone, and nothing else of it', async (t) => {
  // The kernel sends the rest of a page it does not hold whole as a WRITE of its own: a commit may fall after it.
  const dir = t.testdir({ log: '' });
  const log = path.join(dir, 'log');
  const ops = [{ op: 'mkdir', p: 'meta' }, { op: 'create', p: 'meta/f1', id: 1 }, { op: 'append', p: 'meta/f1', n: 100 },
    { op: 'fsync', p: 'meta/f1', data: false }, { op: 'append', p: 'meta/f1', n: 10_000 }];
  fs.writeFileSync(log, ops.map((o, i) => `${JSON.stringify({ s: i + 1, t: 'try', ...o })}\n${JSON.stringify({ s: i + 1, t: 'ok' })}\n`).join(''));
  fs.mkdirSync(path.join(dir, 'meta'));
  const withSize = (size: number): string | null => {
    fs.writeFileSync(path.join(dir, 'meta', 'f1'), patternAt(contentSeed(9, 1), 0, size));
    return checkMetaTree(dir, log, 9, true).problem;
  };
  t.equal(withSize(100), null, 'the fsync\'ed state');
  t.equal(withSize(4096), null, 'the first WRITE of the append (to the end of its first page)');
  t.equal(withSize(10_100), null, 'the whole append');
  t.match(withSize(8192) ?? '', /no state the log allows/, 'any other part of it is not allowed');
  t.match(withSize(50) ?? '', /no state the log allows/, 'less than was fsync\'ed is not allowed');
});

t.test('daxvm test-load: usage errors exit 2 and say what to give', async (t) => {
  const [only, rounds, minutes] = await eachAtOnce([['--only', 'everything'], ['--kill-rounds', '-1'], ['--minutes', 'soon']], 3,
    (args) => cliAsync(['test-load', ...args]));
  t.equal(only!.status, 2);
  t.match(only!.stderr, /--only everything: no such part[\s\S]*one of: kill, fill, clients, hostfull/);
  t.equal(rounds!.status, 2);
  t.match(rounds!.stderr, /--kill-rounds -1: an integer of at least 0/);
  t.equal(minutes!.status, 2);
  t.match(minutes!.stderr, /--minutes soon: a number of minutes/);
});
