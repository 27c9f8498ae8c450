#!/usr/bin/env node
/**
 * Runs the fio job files of bench/fio/ against a daxvm mount (and, with
 * --host, against a host directory for comparison), and prints one table:
 * job, engine, MiB/s, IOPS, p99 latency, bytes verified, verify errors.
 *
 *   npm run bench:fio -- [--mnt DIR] [--host [DIR]] [--jobs seq-write,rand-read] [--engines psync,mmap]
 *                        [--size 256M] [--runtime 10] [--seq-bs 1M] [--rand-bs 4k] [--json FILE]
 *
 * Without --mnt it makes a temporary pool (2 GiB, or twice --size), mounts it
 * in a child process, runs, unmounts and removes it. The job files take their
 * sizes from DAXVM_FIO_* environment variables: options first, then the
 * environment, then the defaults above. Exit 0 when every job ran without an
 * error and verify found nothing wrong, 1 otherwise, 2 for bad arguments.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { daxvmMountAt } from '../../core/mountinfo.js';
import { parseSize } from '../../core/output.js';
import { TempMount } from '../../core/temp-mount.js';
import { formatRows, parseFioJson, rowsOf, type FioRow } from './report.js';

export const JOB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'fio');
const ENGINES = ['psync', 'mmap'];
/** Writes before reads, sequential before random; other job files after, by name. */
const ORDER = ['seq-write', 'seq-read', 'rand-write', 'rand-read'];

class UsageError extends Error {}

interface Options {
  mnt?: string;
  host?: string | boolean;
  jobs?: string;
  engines: string;
  size?: string;
  runtime?: string;
  seqBs?: string;
  randBs?: string;
  poolSize?: string;
  json?: string;
  fio: string;
}

export function availableJobs(): string[] {
  const names = readdirSync(JOB_DIR).filter((f) => f.endsWith('.fio')).map((f) => f.slice(0, -4));
  const rank = (n: string): number => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function pickList(given: string | undefined, all: string[], what: string): string[] {
  if (!given || given === 'all') return all;
  const list = given.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.filter((x) => !all.includes(x));
  if (bad.length || !list.length) throw new UsageError(`unknown ${what} '${bad.join(',') || given}': choose from ${all.join(', ')}`);
  return list;
}

/** Checked values for the DAXVM_FIO_* variables. */
function settings(o: Options): Record<string, string> {
  const env = process.env;
  const size = o.size ?? env.DAXVM_FIO_SIZE ?? '256M';
  const runtime = o.runtime ?? env.DAXVM_FIO_RUNTIME ?? '10';
  const seqBs = o.seqBs ?? env.DAXVM_FIO_SEQ_BS ?? '1M';
  const randBs = o.randBs ?? env.DAXVM_FIO_RAND_BS ?? '4k';
  for (const [name, v] of [['size', size], ['seq-bs', seqBs], ['rand-bs', randBs]] as const) {
    try {
      parseSize(v);
    } catch {
      throw new UsageError(`invalid --${name} '${v}' (examples: 256M, 1M, 4k)`);
    }
  }
  if (!/^\d+$/.test(runtime) || Number(runtime) < 1) throw new UsageError(`invalid --runtime '${runtime}': whole seconds, at least 1`);
  return { DAXVM_FIO_SIZE: size, DAXVM_FIO_RUNTIME: runtime, DAXVM_FIO_SEQ_BS: seqBs, DAXVM_FIO_RAND_BS: randBs };
}

function runFio(fio: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string; spawnError?: string }> {
  return new Promise((res) => {
    const c = spawn(fio, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', (err) => res({ code: null, stderr, spawnError: err.message }));
    c.on('close', (code) => res({ code, stderr }));
  });
}

/** Run each job file in a fresh directory under `dir`; rows, and problems (fio failing to run) as text. */
async function runTarget(target: string, dir: string, jobs: string[], engines: string[], vars: Record<string, string>, fio: string, log: (s: string) => void): Promise<{ rows: FioRow[]; problems: string[] }> {
  const work = mkdtempSync(join(dir, 'daxvm-fio-'));
  const rows: FioRow[] = [];
  const problems: string[] = [];
  try {
    for (const job of jobs) {
      log(`${target}: ${job} (${engines.join(', ')}) in ${work}`);
      const out = join(work, `.${job}.json`);
      const args = ['--output-format=json', `--output=${out}`, ...engines.map((e) => `--section=${e}`), join(JOB_DIR, `${job}.fio`)];
      const r = await runFio(fio, args, { ...process.env, ...vars, DAXVM_MNT: work });
      if (r.spawnError) throw new Error(`cannot run ${fio}: ${r.spawnError} (install it: apt-get install fio)`);
      let got: FioRow[] = [];
      try {
        got = rowsOf(target, job, parseFioJson(readFileSync(out, 'utf8')), r.stderr);
      } catch (err) {
        problems.push(`${target} ${job}: fio exited ${r.code}, no results (${(err as Error).message}): ${r.stderr.trim().slice(0, 500)}`);
      }
      if (r.code !== 0 && got.every((x) => x.error === 0)) problems.push(`${target} ${job}: fio exited ${r.code}: ${r.stderr.trim().slice(0, 500)}`);
      rows.push(...got);
      rmSync(out, { force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { rows, problems };
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('bench:fio')
    .exitOverride()
    .description('run the fio job files of bench/fio against a daxvm mount (and a host directory)')
    .option('--mnt <dir>', 'a daxvm mount (default: a temporary pool, mounted for the run)')
    .option('--host [dir]', 'also run on a host directory (default: the one holding the pool)')
    .option('--jobs <list>', `job files, comma-separated (${availableJobs().join(', ')}), or all`)
    .option('--engines <list>', 'psync, mmap, or both', 'psync,mmap')
    .option('--size <size>', 'file size per job (DAXVM_FIO_SIZE, default 256M)')
    .option('--runtime <seconds>', 'seconds per job at most (DAXVM_FIO_RUNTIME, default 10)')
    .option('--seq-bs <size>', 'block size of the sequential jobs (DAXVM_FIO_SEQ_BS, default 1M)')
    .option('--rand-bs <size>', 'block size of the random jobs (DAXVM_FIO_RAND_BS, default 4k)')
    .option('--pool-size <size>', 'size of the temporary pool (default: 2G, or twice --size)')
    .option('--json <file>', 'also write the settings and rows as JSON to this file')
    .option('--fio <path>', 'the fio program', 'fio');
  try {
    program.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  const o = program.opts<Options>();
  const log = (s: string): void => void process.stderr.write(`bench:fio: ${s}\n`);
  let temp: TempMount | undefined;
  // Ctrl-C: fio gets it too; the temporary mount must not stay behind ('exit' hooks do not run on a signal).
  process.once('SIGINT', () => {
    temp?.kill();
    process.exit(130);
  });
  try {
    const jobs = pickList(o.jobs, availableJobs(), 'job');
    const engines = pickList(o.engines, ENGINES, 'engine');
    const vars = settings(o);
    let mnt: string;
    let poolDir: string;
    if (o.mnt) {
      mnt = resolve(o.mnt);
      const m = daxvmMountAt(mnt);
      if (!m) throw new UsageError(`${mnt} is not a daxvm mount (mount a pool there first: daxvm mount POOL ${mnt}; or leave out --mnt for a temporary one)`);
      poolDir = dirname(m.source);
    } else {
      const poolSize = o.poolSize ?? `${Math.max(2 * 2 ** 30, 2 * parseSize(vars.DAXVM_FIO_SIZE!))}`;
      try {
        parseSize(poolSize);
      } catch {
        throw new UsageError(`invalid --pool-size '${poolSize}'`);
      }
      temp = await TempMount.create(tmpdir(), poolSize, 'daxvm-fio-pool-');
      log(`temporary pool mounted at ${temp.mnt}`);
      mnt = temp.mnt;
      poolDir = tmpdir();
    }
    const hostDir = o.host === undefined || o.host === false ? undefined : resolve(o.host === true ? poolDir : o.host);
    if (hostDir && !(existsSync(hostDir) && statSync(hostDir).isDirectory())) throw new UsageError(`--host ${hostDir} is not a directory`);

    const results = [await runTarget('mount', mnt, jobs, engines, vars, o.fio, log)];
    if (hostDir) results.push(await runTarget('host', hostDir, jobs, engines, vars, o.fio, log));
    const rows = results.flatMap((r) => r.rows);
    const problems = results.flatMap((r) => r.problems);
    process.stdout.write(formatRows(rows));
    const s = vars;
    process.stdout.write(`size ${s.DAXVM_FIO_SIZE} per job, at most ${s.DAXVM_FIO_RUNTIME} s each; bs ${s.DAXVM_FIO_SEQ_BS} sequential, ${s.DAXVM_FIO_RAND_BS} random; MiB = 2^20 bytes\n`);
    for (const p of problems) process.stdout.write(`problem: ${p}\n`);
    if (o.json) {
      writeFileSync(o.json, JSON.stringify({ mount: mnt, host: hostDir ?? null, settings: vars, jobs, engines, rows, problems }, null, 2) + '\n');
    }
    const bad = problems.length > 0 || rows.some((r) => r.error !== 0 || r.verifyErrors > 0);
    return bad ? 1 : 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`bench:fio: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`bench:fio: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await temp?.close();
  }
}

process.exitCode = await main(process.argv);
