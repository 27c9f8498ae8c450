/**
 * Statistics over a variant's timed runs: medians (a loaded machine only
 * slows runs down, so the middle run says more than the mean), the spread as
 * min..max and quartiles, and the ratio to the baseline variant. Throughput is
 * of each run over its own wall time, then summarized.
 */
import type { RunResult } from './types.js';

const MiB = 1024 * 1024;

/** Linear-interpolated quantile of sorted values (q in [0, 1]); NaN for none. */
export function quantile(sorted: number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = sorted[Math.floor(pos)];
  const hi = sorted[Math.ceil(pos)];
  if (lo === undefined || hi === undefined) return NaN;
  return lo + (hi - lo) * (pos - Math.floor(pos));
}

/** The median of the values (any order); NaN for none. */
export function median(xs: number[]): number {
  return quantile([...xs].sort((a, b) => a - b), 0.5);
}

export interface Summary {
  median: number;
  min: number;
  max: number;
  q1: number;
  q3: number;
}

export function summarize(xs: number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN, q1: quantile(s, 0.25), q3: quantile(s, 0.75) };
}

/** Half the min..max range as a share of the median: the "±" of the table. */
export function spreadShare(s: Summary): number {
  return s.median > 0 ? (s.max - s.min) / 2 / s.median : NaN;
}

export interface Figures {
  mibps: Summary;
  opsPerS: Summary;
}

export function figures(runs: RunResult[]): Figures {
  return {
    mibps: summarize(runs.map((r) => r.bytes / MiB / r.seconds)),
    opsPerS: summarize(runs.map((r) => r.ops / r.seconds)),
  };
}

/** A variant's median over the baseline's; undefined when either is missing. */
export function ratio(median: number | undefined, baseline: number | undefined): number | undefined {
  return median !== undefined && baseline !== undefined && baseline > 0 ? median / baseline : undefined;
}
