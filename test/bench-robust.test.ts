// daxvm bench when things go wrong, and what a person reads: a run that
// cannot fit is refused before it starts, with the figures; an interrupted
// run keeps every case it finished (JSON and table); the table fits 100
// columns; every chart gives a variant the same colour and says whether the
// image was aged; a chart can be drawn again from a run's JSON. The shape of
// the output only, never a speed.
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { chartSvg, variantStyle } from '../src/bench/micro/chart.js';
import type { Environment } from '../src/bench/micro/env.js';
import { findBench } from '../src/bench/micro/registry.js';
import type { CaseResult } from '../src/bench/micro/runner.js';
import { formatTable } from '../src/bench/micro/table.js';
import { CLI, cli, freshMount, NODE, run, sleep, tempDir } from './helpers/mount.js';

const KiB = 1024;
const summary = (m: number) => ({ median: m, min: m * 0.9, max: m * 1.2, q1: m * 0.95, q3: m * 1.1 });

function fakeCases(bench: string, sizes: number[], variants: string[]): CaseResult[] {
  return sizes.map((size) => ({
    spec: { size, count: 10_000, threads: 1 },
    variants: variants.map((variant, i) => ({
      variant, runs: [],
      figures: { mibps: summary(12345.678 / (i + 1)), opsPerS: summary(1234567 / (i + 1)) },
      ratio: 1 / (i + 1),
    })),
    checksum: '0123456789abcdef',
  }));
}

const env = (aged: Environment['mount']['aged']): Environment => ({
  machine: { cpu: 'a CPU', cores: 2, memoryBytes: 24 * 1024 ** 3 }, kernel: '6.18', node: 'v20', daxvm: { version: '0.1.0' },
  cache: { asked: 'warm', done: 'warm' }, mount: { aged },
} as unknown as Environment);

t.test('the table fits 100 columns, for every bench with all its variants', async (t) => {
  for (const name of ['read', 'mt', 'append', 'db-read', 'db-write', 'preload']) {
    const bench = findBench(name)!;
    const cases = fakeCases(name, [4 * KiB, 1024 ** 3], bench.variants.map((v) => v.name));
    const text = formatTable(bench, cases, { runs: 5, cache: 'warm' });
    const wide = text.split('\n').filter((l) => l.length > 100);
    t.same(wide, [], `bench ${name}: every line is at most 100 columns`);
  }
});

t.test('charts: one colour per variant in every chart; titles tell fresh from aged', async (t) => {
  const read = findBench('read')!;
  const db = findBench('db-read')!;
  const a = await chartSvg(read, fakeCases('read', [4 * KiB, 64 * KiB], ['read', 'mmap', 'daxvm', 'native']), env(false), 5);
  const b = await chartSvg(db, fakeCases('db-read', [KiB, 4 * KiB], ['daxvm', 'native']), env([{ dir: 'x', status: 'done', params: {}, finished: null }]), 5);
  const colour = (v: string) => variantStyle(v, 0).color;
  for (const v of ['read', 'mmap', 'daxvm', 'native']) t.match(a, colour(v), `read chart: ${v} in its colour`);
  t.notMatch(b, colour('read'), 'db-read chart without read: not its colour');
  for (const v of ['daxvm', 'native']) t.match(b, colour(v), `db-read chart: ${v} in the same colour as in the read chart`);
  t.equal(new Set(['read', 'mmap', 'populate', 'daxvm', 'native', 'native-mmap', 'daxvm-ephemeral', 'daxvm-batching']
    .map(colour)).size, 8, 'variants shown together never share a colour');
  t.match(a, /\(fresh image\)/, 'a fresh image says so');
  t.match(b, /\(aged image/, 'an aged one too');

  // Every variant with the same figures: each point still shows, beside the others, not under them.
  const same = fakeCases('read', [4 * KiB, 64 * KiB], ['read', 'mmap', 'daxvm', 'native']);
  for (const c of same) for (const v of c.variants) v.figures = c.variants[0]!.figures;
  const svg = await chartSvg(read, same, env(false), 5);
  const points = [...svg.matchAll(/aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="point" transform="translate\(([\d.]+),([\d.]+)\)"/g)];
  t.equal(points.length, 8, 'a point per variant and size');
  t.equal(new Set(points.map((p) => `${p[2]},${p[3]}`)).size, 8, 'equal figures are drawn side by side, none on top of another');
  t.ok(points.every((p) => /^(read|mmap|daxvm|native), (4|64) KiB: \d/.test(p[1]!)), `points say what they are\n${points.map((p) => p[1]).join('\n')}`);
});

t.test('a run that cannot fit is refused before it starts; an interrupted run keeps what it measured', async (t) => {
  const m = await freshMount(t, { size: '512M' });
  const dir = tempDir(t);
  const started = Date.now();
  let r = cli(['bench', 'read', '--sizes', '4k,16k,64k,1g', '--files', '2000', '--mnt', m.mnt]);
  t.equal(r.status, 1, r.summary);
  t.match(r.stderr, /not enough space for this run: read 1 GiB x 2000 files needs .* on .*, which has .* free/, 'names the case and the figures');
  t.match(r.stderr, /hint: .*--files/, 'and what to change');
  t.ok(Date.now() - started < 60_000, 'before it writes anything');

  const json = join(dir, 'read.json');
  const child = spawn(process.execPath, [CLI, 'bench', 'read', '--sizes', '4k,256m', '--files', '1', '--runs', '3',
    '--variants', 'read,mmap', '--native', dir, '--mnt', m.mnt, '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const deadline = Date.now() + 240_000;
  while (!existsSync(json) && Date.now() < deadline && child.exitCode === null) await sleep(100);
  t.ok(existsSync(json), `the JSON is written once the first case is done\n${err}`);
  child.kill('SIGINT');
  const code = await exited;
  t.equal(code, 130, `interrupted: exit 130\n${err}`);
  const doc = JSON.parse(readFileSync(json, 'utf8')) as { complete: boolean; stopped?: string; records: Array<{ size: number; variant: string }> };
  t.equal(doc.complete, false, 'the JSON says the run is not complete');
  t.match(doc.stopped ?? '', /interrupted/, 'and why');
  t.same(doc.records.map((x) => `${x.variant} ${x.size}`), ['read 4096', 'mmap 4096'], 'it holds the case measured');
  t.match(out, /MiB\/s[\s\S]*4 KiB/, 'the table of the finished case is printed');
  t.same(readdirSync(m.mnt).filter((n) => n.startsWith('daxvm-bench')), [], 'its files on the mount are removed');

  r = cli(['bench', 'read', '--from', json, '--chart', join(dir, 'again.svg')]);
  t.equal(r.status, 0, r.summary);
  t.match(r.stderr, new RegExp(`chart: ${join(dir, 'again.svg')} \\(drawn from`), 'says where it drew the chart');
  t.match(readFileSync(join(dir, 'again.svg'), 'utf8'), /^<svg/, 'an SVG from the JSON, no new run');
  await m.stop();
});

t.test('a run that runs out of space midway: one message, exit 1, the cases finished kept', async (t) => {
  const m = await freshMount(t, { size: '128M' });
  const dir = tempDir(t);
  const json = join(dir, 'read.json');
  // The space check passes; then, stopped right after it, the mount is filled by someone else (here: the test).
  const child = spawn(NODE[0]!, [...NODE.slice(1), CLI, 'bench', 'read', '--sizes', '4k,16m', '--files', '3', '--runs', '2',
    '--variants', 'read', '--mnt', m.mnt, '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const deadline = Date.now() + 120_000;
  while (!/^space: /m.test(err) && Date.now() < deadline && child.exitCode === null) await sleep(5);
  t.ok(child.kill('SIGSTOP'), `stopped after its space check\n${err}`);
  const s = statfsSync(m.mnt);
  const fill = Math.floor((s.bavail * s.bsize - 1024 * 1024) / 4096) * 4096;
  const f = run('fallocate', ['-l', String(fill), join(m.mnt, 'filler')]);
  t.equal(f.status, 0, `the mount filled, 1 MiB left\n${f.summary}`);
  child.kill('SIGCONT');
  const code = await exited;
  t.equal(code, 1, `exit 1\n${err}`);
  t.match(err, /^daxvm: the bench ran out of space \(ENOSPC/m, 'says it ran out of space');
  t.match(err, /^hint: run fewer files \(--files N\) or smaller --sizes; the cases measured before are above$/m, 'and what to change');
  t.notMatch(err, /internal error|^\s+at .*:\d+:\d+\)?$/m, 'no internal error, no stack');
  const doc = JSON.parse(readFileSync(json, 'utf8')) as { complete: boolean; stopped?: string; records: Array<{ size: number; variant: string }> };
  t.equal(doc.complete, false, 'the JSON says the run is not complete');
  t.match(doc.stopped ?? '', /stopped by an error: .*ENOSPC/, 'and why');
  t.same(doc.records.map((x) => `${x.variant} ${x.size}`), ['read 4096'], 'it holds the case measured before');
  t.match(out, /MiB\/s[\s\S]*4 KiB/, 'whose table is printed');
  t.same(readdirSync(m.mnt).filter((n) => n.startsWith('daxvm-bench')), [], 'its files on the mount are removed');
  await m.stop();
});
