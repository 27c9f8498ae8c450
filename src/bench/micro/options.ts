/**
 * `daxvm bench` options as typed on the command line, checked into
 * BenchOptions: a wrong value is a usage error (exit 2) that names the value
 * and what would be right.
 */
import { availableParallelism } from 'node:os';
import { CliError, EXIT } from '../../core/errors.js';
import { formatBytes, parseSize } from '../../core/output.js';
import type { AccessPattern, BenchDef, BenchFlag, BenchOptions, CaseSpec } from './types.js';

/** As commander hands them over. */
export interface RawBenchOptions {
  mnt?: string;
  native?: string;
  json?: string;
  chart?: string;
  sizes?: string;
  files?: string;
  runs?: string;
  variants?: string;
  threads?: string;
  seed?: string;
  quick?: boolean;
  cold?: boolean;
  dbSize?: string;
  pattern?: string;
  syncEvery?: string;
  /** Draw the table and --chart of a run's JSON instead of running. */
  from?: string;
}

const usage = (message: string, hint?: string): CliError => new CliError(message, EXIT.USAGE, hint);

const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter((x) => x !== '');

export function parseSizes(s: string): number[] {
  const items = list(s);
  if (items.length === 0) throw usage(`--sizes '${s}' names no size`, 'e.g. --sizes 4k,64k,1m,1g');
  return items.map((item) => {
    try {
      return parseSize(item);
    } catch {
      throw usage(`--sizes: '${item}' is not a size`, 'sizes are numbers with k, m or g (binary units): --sizes 4k,64k,1m,1g');
    }
  });
}

function positiveInt(flag: string, s: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\s*\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw usage(`${flag} '${s}' is not a whole number from 1 to ${max}`);
  return n;
}

export function parseThreads(s: string): number[] {
  const items = list(s);
  if (items.length === 0) throw usage(`--threads '${s}' names no thread count`, 'e.g. --threads 1,2,4');
  return [...new Set(items.map((x) => positiveInt('--threads', x, 1024)))].sort((a, b) => a - b);
}

const PATTERNS: readonly AccessPattern[] = ['seq', 'rand'];

function parsePatterns(s: string): AccessPattern[] {
  const items = list(s);
  const bad = items.filter((x) => !(PATTERNS as readonly string[]).includes(x));
  if (items.length === 0 || bad.length) throw usage(`--pattern '${s}': ${bad.length ? `no pattern '${bad[0]}'` : 'names no pattern'}`, 'seq, rand or both: --pattern seq,rand');
  return PATTERNS.filter((p) => items.includes(p));
}

function parseSyncEvery(s: string): number {
  const n = /^\s*\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n)) throw usage(`--sync-every '${s}' is not a whole number`, '1: after every write, N: after every N writes, 0: once at the end of the pass');
  return n;
}

/** The options only some benches take: refused, naming the benches that do, when this one does not. */
function benchFlags(bench: BenchDef, raw: RawBenchOptions): Pick<BenchOptions, 'dbSize' | 'patterns' | 'syncEvery'> {
  const given: Array<[BenchFlag, string | undefined]> = [['db-size', raw.dbSize], ['pattern', raw.pattern], ['sync-every', raw.syncEvery]];
  for (const [flag, value] of given) {
    if (value !== undefined && !bench.takes?.includes(flag)) {
      throw usage(`bench ${bench.name} takes no --${flag}`, `--${flag} is an option of ${flag === 'sync-every' ? 'db-write' : 'db-read and db-write'}`);
    }
  }
  let dbSize: number | undefined;
  if (raw.dbSize !== undefined) {
    try {
      dbSize = parseSize(raw.dbSize);
    } catch {
      throw usage(`--db-size: '${raw.dbSize}' is not a size`, 'e.g. --db-size 256m or 1g');
    }
  }
  return {
    ...(dbSize !== undefined ? { dbSize } : {}),
    ...(raw.pattern !== undefined ? { patterns: parsePatterns(raw.pattern) } : {}),
    ...(raw.syncEvery !== undefined ? { syncEvery: parseSyncEvery(raw.syncEvery) } : {}),
  };
}

export function parseBenchOptions(bench: BenchDef, raw: RawBenchOptions): BenchOptions {
  const known = bench.variants.map((v) => v.name);
  let variants = known;
  if (raw.variants !== undefined) {
    const asked = list(raw.variants);
    const unknown = asked.filter((v) => !known.includes(v));
    if (unknown.length || asked.length === 0) {
      throw usage(`bench ${bench.name} has no variant ${unknown.map((u) => `'${u}'`).join(', ') || `in '${raw.variants}'`}`,
        `its variants: ${known.join(', ')}`);
    }
    variants = known.filter((v) => asked.includes(v));
  }
  const quick = raw.quick ?? false;
  return {
    ...(raw.sizes !== undefined ? { sizes: parseSizes(raw.sizes) } : {}),
    ...(raw.files !== undefined ? { files: positiveInt('--files', raw.files) } : {}),
    ...(raw.threads !== undefined ? { threads: parseThreads(raw.threads) } : {}),
    runs: raw.runs !== undefined ? positiveInt('--runs', raw.runs, 1000) : quick ? 2 : 5,
    variants,
    quick,
    cold: raw.cold ?? false,
    seed: raw.seed !== undefined ? positiveInt('--seed', raw.seed) : 1,
    ...benchFlags(bench, raw),
  };
}

/** 1, 2, 4, ... up to the cores, and the core count itself (the default of multi-threaded benches). */
export function defaultThreadCounts(): number[] {
  const k = availableParallelism();
  const out: number[] = [];
  for (let t = 1; t < k; t *= 2) out.push(t);
  out.push(k);
  return out;
}

/**
 * The usual plan: every size x every thread count, `count(size)` files or
 * accesses each unless `--files` says; sizes outside [min, max] are refused.
 */
export function sizesByThreads(o: BenchOptions, d: {
  sizes: number[]; quickSizes: number[]; threads: number[]; min: number; max: number; count: (size: number) => number;
}): CaseSpec[] {
  const sizes = o.sizes ?? (o.quick ? d.quickSizes : d.sizes);
  for (const s of sizes) {
    if (s < d.min || s > d.max) throw usage(`size ${formatBytes(s)} is outside what this bench takes (${formatBytes(d.min)} to ${formatBytes(d.max)})`);
  }
  const threads = o.threads ?? d.threads;
  return sizes.flatMap((size) => threads.map((t) => ({ size, threads: t, count: o.files ?? d.count(size) })));
}
