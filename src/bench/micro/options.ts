/**
 * `daxvm bench` options as typed on the command line, checked into
 * BenchOptions: a wrong value is a usage error (exit 2) that names the value
 * and what would be right.
 */
import { availableParallelism } from 'node:os';
import { CliError, EXIT } from '../../cli/errors.js';
import { formatBytes, parseSize } from '../../cli/format.js';
import type { BenchDef, BenchOptions, CaseSpec } from './types.js';

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
