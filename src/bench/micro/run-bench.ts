/**
 * One `daxvm bench NAME` from start to end: options, the mount, the knobs a
 * variant needs, the environment, every case through the runner, and the
 * outputs (table, JSON, chart). Whatever happens (an error, Ctrl-C), the
 * scratch and host directories go, knobs are restored and a temporary pool
 * is unmounted and removed.
 */
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import debug from 'debug';
import { CliError, EXIT } from '../../core/errors.js';
import { checkChartLibraries, writeChart } from './chart.js';
import { environment, type Environment } from './env.js';
import { daxvmMountAt, readMounts } from '../../core/mountinfo.js';
import { BenchMount, DEFAULT_MNT } from './mount.js';
import { BenchOutput, checkOutputPath } from './output.js';
import { parseBenchOptions, type RawBenchOptions } from './options.js';
import { benchProgress } from './progress.js';
import { ChecksumError, dropCaches, runCase, type CaseResult } from './runner.js';
import { checkSpace, hostStores, mountStores, needs } from './space.js';
import type { BenchContext, BenchDef } from './types.js';

const log = debug('daxvm:bench');

function cacheState(cold: boolean, note: (m: string) => void): Environment['cache'] {
  if (!cold) return { asked: 'warm', done: 'warm' };
  if (dropCaches()) return { asked: 'cold', done: 'cold' };
  const why = 'cannot drop the page cache (writing /proc/sys/vm/drop_caches needs root)';
  note(`--cold: ${why}; the runs are warm`);
  return { asked: 'cold', done: 'warm', note: why };
}

/** Output files are checked before minutes of running, not after. */
function checkOutputs(raw: RawBenchOptions): void {
  for (const [flag, file] of [['--json', raw.json], ['--chart', raw.chart]] as const) {
    if (file === undefined || (flag === '--json' && file === '-')) continue;
    checkOutputPath(flag, file);
  }
  if (raw.chart !== undefined && !/\.svg$/i.test(raw.chart)) {
    throw new CliError(`--chart ${raw.chart}: the chart is an SVG file`, EXIT.USAGE, 'name it FILE.svg (any browser shows it; rsvg-convert or inkscape turn it into PNG)');
  }
  if (raw.chart !== undefined) checkChartLibraries();
}

export async function runBench(bench: BenchDef, raw: RawBenchOptions): Promise<number> {
  const started = new Date();
  const options = parseBenchOptions(bench, raw);
  checkOutputs(raw);
  const cases = bench.plan(options);
  if (cases.length === 0) throw new CliError(`bench ${bench.name}: nothing to run`, EXIT.USAGE);
  const selected = bench.variants.filter((v) => options.variants.includes(v.name));
  let note = (m: string): void => { process.stderr.write(`${m}\n`); };

  const poolBytes = Math.max(...cases.map((c) => bench.scratchBytes?.(c, options) ?? c.size * c.count));
  const wantNative = selected.some((v) => v.native);
  const need = needs(bench, cases, options, wantNative);
  const nativeHost = raw.native !== undefined ? resolve(raw.native) : tmpdir();
  const usesTemp = raw.mnt === undefined && !daxvmMountAt(DEFAULT_MNT, readMounts());
  // Before a temporary pool is even made: it is sparse, so the host must hold what the run writes.
  let space = usesTemp && existsSync(nativeHost) ? checkSpace(need, hostStores(tmpdir(), wantNative ? nativeHost : undefined)) : '';
  const mount = await BenchMount.open({
    ...(raw.mnt !== undefined ? { mnt: raw.mnt } : {}),
    ...(raw.native !== undefined ? { native: raw.native } : {}),
    poolBytes,
    wantNative,
    note: (m) => note(m),
  });
  const results: CaseResult[] = [];
  let env: Environment | undefined;
  // What was measured is kept whatever happens: the JSON is rewritten after every case, and an interrupted run prints its table.
  const output = new BenchOutput(bench, options, raw, started);
  const onSignal = (): void => {
    mount.closeNow();
    output.interrupted(results, env, 'interrupted (signal)');
    process.stderr.write(`\ndaxvm bench ${bench.name}: interrupted; its files are removed${mount.temp ? ' and the temporary pool unmounted' : ''}\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => mount.closeNow());

  try {
    if (!usesTemp) space = checkSpace(need, mountStores(mount.mnt, mount.nativeDir));
    if (space) note(space);
    if (selected.some((v) => v.needsTables) && mount.knob('page_tables_on') === '0') {
      mount.setKnob('page_tables_on', 1);
      note(`knob page_tables_on was 0: set to 1 so the bench's files get page tables (MAP_DAXVM); restored at the end`);
    }
    const cache = cacheState(options.cold, note);
    env = environment(mount, cache);
    log('bench %s on %s (pool %s), %d cases, variants %s', bench.name, mount.mnt, mount.pool, cases.length, options.variants.join(','));
    const progress = benchProgress(bench.name, cases.length * options.variants.length * (options.runs + 1));
    note = (m) => progress.note(m);
    const ctx: BenchContext = {
      scratch: mount.scratch,
      nativeDir: mount.nativeDir,
      mnt: mount.mnt,
      pool: mount.pool,
      options,
      setKnob: (name, value) => mount.setKnob(name, value),
      knob: (name) => mount.knob(name),
      record: (name, value) => { output.method[name] = value; },
      note: (m) => note(m),
      debug: log,
    };
    try {
      for (const c of cases) {
        results.push(await runCase(bench, ctx, c, progress, cache.done === 'cold'));
        output.checkpoint(results, env);
      }
    } finally {
      progress.stop();
      note = (m) => { process.stderr.write(`${m}\n`); };
    }
  } catch (err) {
    output.interrupted(results, env, `stopped by an error: ${(err as Error).message}`);
    if (err instanceof ChecksumError) throw new CliError(err.message, EXIT.FAILURE, 'this is a bug in daxvm (or the files changed under the bench): please report it');
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new CliError(`the bench ran out of space (${code}${(err as NodeJS.ErrnoException).path ? `: ${(err as NodeJS.ErrnoException).path}` : ''})`, EXIT.FAILURE,
        'run fewer files (--files N) or smaller --sizes; the cases measured before are above');
    }
    throw err;
  } finally {
    await mount.close();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }

  output.done(results, env!);
  if (raw.chart !== undefined) {
    await writeChart(raw.chart, bench, results, env!, options.runs);
    process.stderr.write(`chart: ${resolve(raw.chart)}\n`);
  }
  return EXIT.OK;
}
