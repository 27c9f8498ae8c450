/**
 * Hostile images, CI form (`daxvm test-fuzz` is the long form): over a
 * hundred pools damaged one structure at a time (every kind in turn, both base
 * images), each run through fsck, mount + a walk reading everything, fsck
 * --repair, a mount of the repaired pool and a second fsck, in worker
 * processes with a time limit per case. And proof that the checker calls
 * a crash a crash.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { FileSystem } from '../src/fs/index.js';
import { checkCase } from '../src/reliability/fuzz-check.js';
import { buildBases, runFuzzer } from '../src/reliability/fuzz.js';
import { scratchDir, WorkImage } from '../src/reliability/image.js';
import { makeCase } from '../src/reliability/damage.js';
import { inventory, STRUCT_KINDS } from '../src/reliability/structures.js';
import { cliAsync } from './helpers/mount.js';

// 156 cases: six rounds of the 13 kinds over the 2 base images (12 of each kind, 6 on each base); `daxvm test-fuzz --cases N`
// runs as many as asked (the long form; nine rounds here cost the suite ~10 s more).
t.test('over a hundred damaged pools: fsck, mount and fsck --repair survive every one', async (t) => {
  const lines: string[] = [];
  const r = await runFuzzer({ cases: 156, seed: 1, workers: 2, timeoutMs: 60000, keep: t.testdir(), log: (l) => lines.push(l) });
  t.comment(lines.filter((l) => !l.startsWith('  ')).join('\n'));
  t.equal(r.cases, 156, `${r.cases} cases in ${r.seconds.toFixed(1)} s`);
  t.equal(r.failed, 0, r.failures.slice(0, 5).map((f) => `case ${f.index}: ${f.problem}\n  ${f.what}\n  ${f.replay}`).join('\n') || 'no failure');
  t.equal(lines[lines.length - 1], `fuzz cases: ${r.cases} run, 0 failed`, 'the closing line');
  for (const k of STRUCT_KINDS) t.ok((r.byKind[k]?.cases ?? 0) >= 12, `${k}: ${r.byKind[k]?.cases ?? 0} cases`);
  t.ok(r.refused > 0 && r.served > 0, `some damaged pools are refused (${r.refused}), most are served (${r.served})`);
});

t.test('the checker calls anything but FsError or PoolError a crash', async (t) => {
  const dir = scratchDir('daxvm-fuzz-test-');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const paths = buildBases(dir, 3);
  const bases = paths.map((p) => fs.readFileSync(p));
  const inventories = paths.map((p) => inventory(p));
  const img = new WorkImage(path.join(dir, 'work.pool'), Buffer.from(bases[0]!));
  t.teardown(() => img.close());
  const c = makeCase(3, 0, bases, inventories);
  const readdir = FileSystem.prototype.readdir;
  FileSystem.prototype.readdir = function (): never {
    throw new TypeError('a bug in a reader');
  };
  try {
    const o = checkCase(img, c);
    t.match(o.failure ?? '', /threw TypeError: a bug in a reader/, `reported: ${o.failure}`);
  } finally {
    FileSystem.prototype.readdir = readdir;
  }
  const o = checkCase(img, c);
  t.equal(o.failure, null, 'the same case passes with the real reader');
  t.ok(img.dirtyPages === 0, 'and the working image is back to the base');
});

t.test('daxvm test-fuzz: the CLI, its closing line, one case replayed, usage errors', async (t) => {
  // The CLI's own path (dist's worker, its closing line): a few cases, the kinds are covered above. Three independent runs side by side.
  const [r, one, bad] = await Promise.all([['--cases', '4', '--seed', '2', '--workers', '1'], ['--seed', '2', '--case', '5'], ['--cases', 'many']]
    .map((args) => cliAsync(['test-fuzz', ...args], { timeoutMs: 300_000 })));
  t.equal(r!.status, 0, r!.stderr);
  t.match(r!.stdout.trim().split('\n').pop() ?? '', /^fuzz cases: 4 run, 0 failed$/);
  t.equal(one!.status, 0, one!.stderr);
  t.match(one!.stdout, /^case 5: (clean|crashed) base; /m, 'the damage is described');
  t.match(one!.stdout, /fsck exit \d; open (refused|served)/);
  t.equal(bad!.status, 2, 'a bad count is a usage error');
});
