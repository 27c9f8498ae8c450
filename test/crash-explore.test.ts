/**
 * Crash-state exploration, CI form (`daxvm test-crash` is the long form):
 * every workload recorded store by store, over a thousand crash images built
 * from the stores in flight at each barrier, each one recovered, compared
 * with the model and fsck'ed. And proof that the explorer sees a real
 * crash bug: put back the one it found (the commit block could reach the
 * media before the file data) and it must fail.
 */
import t from 'tap';
import { FsCore } from '../src/fs/core.js';
import { runCrashExplorer } from '../src/reliability/crash.js';
import { Voucher } from '../src/fs/vouch.js';
import { cliAsync, eachAtOnce } from './helpers/mount.js';

// 1600 states here (a few per barrier); `daxvm test-crash --states N` explores as many as asked.
t.test('over a thousand crash states over every workload: all recover to a state the model allows, fsck clean', async (t) => {
  const lines: string[] = [];
  const started = Date.now();
  const r = runCrashExplorer({ states: 1600, seed: 1, workload: 'all', log: (l) => lines.push(l) });
  const secs = (Date.now() - started) / 1000;
  t.comment(lines.filter((l) => l.startsWith('workload') || l.startsWith('crash states')).join('\n'));
  t.ok(r.explored >= 1500, `${r.explored} states explored in ${secs.toFixed(1)} s`);
  t.equal(r.failed, 0, r.failures.slice(0, 5).map((f) => `${f.workload} ${f.state}: ${f.problem}\n  ${f.replay}`).join('\n') || 'no failure');
  t.equal(lines[lines.length - 1], `crash states: ${r.explored} explored, 0 failed`, 'the closing line');
  t.ok(r.workloads.length >= 10 && r.workloads.every((w) => w.explored > 0 && w.barriers > 0), 'every workload recorded barriers and had states explored');
});

t.test('the explorer finds a commit block that may reach the media before the data it points at', async (t) => {
  const commit = FsCore.prototype.commit;
  // The bug as it was: no barrier between the data of new blocks and the journal.
  FsCore.prototype.commit = function (this: FsCore): void {
    this.dataOrdered = false;
    commit.call(this);
  };
  let r;
  try {
    r = runCrashExplorer({ states: 120, seed: 1, workload: 'data', keep: t.testdir(), log: () => undefined });
  } finally {
    FsCore.prototype.commit = commit;
  }
  t.ok(r.failed > 0, `${r.failed} of ${r.explored} states failed`);
  t.match(r.failures[0]?.problem ?? '', /never held/, 'a file shows bytes it never held');
  t.match(r.failures[0]?.replay ?? '', /^npx daxvm test-crash --workload data --seed 1 --replay \d+:\w+/, 'with the command that replays it');
  t.ok(r.failures.slice(0, 5).every((f) => f.image.endsWith('.pool')), 'and the image kept');
});

t.test('the explorer finds a vouched byte changed before a later commit proves the commit that vouched for it', async (t) => {
  // The confirm taken away: a store over the bytes an fsync'ed commit vouched for goes first.
  const guard = Object.getOwnPropertyDescriptor(Voucher.prototype, 'beforeStore')!;
  Object.defineProperty(Voucher.prototype, 'beforeStore', { value: () => undefined, configurable: true });
  let r;
  try {
    r = runCrashExplorer({ states: 120, seed: 1, workload: 'vouch', log: () => undefined });
  } finally {
    Object.defineProperty(Voucher.prototype, 'beforeStore', guard);
  }
  t.ok(r.failed > 0, `${r.failed} of ${r.explored} states failed`);
  t.match(r.failures[0]?.problem ?? '', /recovered tree is not the model .*fsync \/log/, 'an fsync that returned is undone');
});

t.test('daxvm test-crash: the CLI, its closing line, a replay, and usage errors', async (t) => {
  // Seven independent runs of the CLI, side by side.
  const [list, r, replay, noWorkload, noReplayWorkload, noBarrier, noState] = await eachAtOnce([
    ['--list'],
    ['--workload', 'xattr', '--states', '40', '--seed', '3'],
    ['--workload', 'xattr', '--seed', '3', '--replay', '1:all'],
    ['--workload', 'nosuch'],
    ['--replay', '1:all'],
    ['--workload', 'xattr', '--replay', '999:all'],
    ['--workload', 'xattr', '--replay', '1:omit.9999'],
  ], 4, (args) => cliAsync(['test-crash', ...args]));
  t.equal(list!.status, 0);
  t.match(list!.stdout, /^names /m, '--list names the workloads');
  t.equal(r!.status, 0, r!.stderr);
  t.match(r!.stdout.trim().split('\n').pop() ?? '', /^crash states: 40 explored, 0 failed$/);
  t.equal(replay!.status, 0, replay!.stderr);
  t.match(replay!.stdout, /replaying xattr 1:all/);
  t.match(replay!.stdout.trim().split('\n').pop() ?? '', /^crash states: 1 explored, 0 failed$/);
  t.equal(noWorkload!.status, 2, 'an unknown workload is a usage error');
  t.equal(noReplayWorkload!.status, 2, '--replay without --workload is a usage error');
  t.equal(noBarrier!.status, 2, 'a barrier the workload does not have is a usage error');
  t.equal(noState!.status, 2, 'so is a state the barrier does not have');
});
