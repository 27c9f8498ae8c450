/**
 * The JSON of a bench run: the environment header, the options, and one
 * record per (bench, variant, size, threads[, params]) with its medians,
 * spread and every timed run's raw figures. Field names are snake_case, the
 * units in the names (bytes, seconds, mibps: MiB per second).
 */
import type { Environment } from './env.js';
import type { CaseResult } from './runner.js';
import type { Summary } from './stats.js';
import type { BenchDef, BenchOptions } from './types.js';

export interface BenchRecord {
  bench: string;
  variant: string;
  /** Bytes: file size, or access size. */
  size: number;
  threads: number;
  /** Files or accesses per run, and which. */
  count: number;
  count_label: string;
  params?: Record<string, string | number>;
  /** Null when the variant could not run here; `unavailable` says why. */
  median_mibps: number | null;
  median_ops_per_s: number | null;
  mibps: Summary | null;
  ops_per_s: Summary | null;
  /** median_mibps over the baseline variant's. */
  ratio_to_baseline: number | null;
  baseline: string;
  checksum: string | null;
  modes?: Record<string, number>;
  unavailable?: string;
  /** `untimed_seconds`: steps kept off the clock, timed aside (e.g. `map`). */
  runs: Array<{ seconds: number; bytes: number; ops: number; untimed_seconds?: Record<string, number> }>;
}

export interface BenchJson {
  bench: string;
  summary: string;
  started: string;
  seconds: number;
  /** False while the run goes on, and in what a run that stopped early left; `stopped` says why. */
  complete: boolean;
  stopped?: string;
  options: BenchOptions;
  environment: Environment;
  /** Facts of the method the bench found or decided at run time (BenchContext.record). */
  method: Record<string, string | number | boolean>;
  records: BenchRecord[];
}

export function records(bench: BenchDef, cases: CaseResult[]): BenchRecord[] {
  return cases.flatMap((c) => c.variants.map((v): BenchRecord => ({
    bench: bench.name,
    variant: v.variant,
    size: c.spec.size,
    threads: c.spec.threads,
    count: c.spec.count,
    count_label: bench.countLabel,
    ...(c.spec.params ? { params: c.spec.params } : {}),
    median_mibps: v.figures?.mibps.median ?? null,
    median_ops_per_s: v.figures?.opsPerS.median ?? null,
    mibps: v.figures?.mibps ?? null,
    ops_per_s: v.figures?.opsPerS ?? null,
    ratio_to_baseline: v.ratio ?? null,
    baseline: bench.baseline,
    checksum: v.figures ? c.checksum ?? null : null,
    ...(v.modes ? { modes: v.modes } : {}),
    ...(v.unavailable ? { unavailable: v.unavailable } : {}),
    runs: v.runs.map((r) => ({ seconds: r.seconds, bytes: r.bytes, ops: r.ops, ...(r.untimed ? { untimed_seconds: r.untimed } : {}) })),
  })));
}
