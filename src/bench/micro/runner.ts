/**
 * Runs a bench's cases: per case one session, an untimed warm-up pass, then
 * the timed passes, the variants taken in turn in each pass (drifting load on
 * a shared machine then falls on all of them alike). Checks every checksum,
 * takes out variants that cannot run here, and summarizes.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { formatBytes } from '../../core/output.js';
import type { BenchProgress } from './progress.js';
import { figures, ratio, type Figures } from './stats.js';
import type { BenchContext, BenchDef, CaseSpec, RunResult } from './types.js';

export interface VariantResult {
  variant: string;
  /** The timed runs (the warm-up pass is not among them). */
  runs: RunResult[];
  /** Why it was not measured in this case. */
  unavailable?: string;
  figures?: Figures;
  /** Median MiB/s over the baseline's median MiB/s. */
  ratio?: number;
  /** How the library mapped, summed over the timed runs. */
  modes?: Record<string, number>;
}

export interface CaseResult {
  spec: CaseSpec;
  variants: VariantResult[];
  /** The checksum every pass agreed on. */
  checksum?: string;
}

export function caseLabel(bench: BenchDef, c: CaseSpec): string {
  const params = Object.entries(c.params ?? {}).map(([k, v]) => `${k}=${v}`);
  return [`${bench.name} ${formatBytes(c.size)} x ${c.count} ${bench.countLabel}`,
    ...(c.threads > 1 || bench.chartX === 'threads' ? [`${c.threads} thread${c.threads > 1 ? 's' : ''}`] : []), ...params].join(', ');
}

/** Drop the page cache (root); false when this process may not. */
export function dropCaches(): boolean {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

function addModes(into: Record<string, number>, from: Record<string, number> | undefined): void {
  for (const [k, v] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + v;
}

export class ChecksumError extends Error {}

export async function runCase(bench: BenchDef, ctx: BenchContext, spec: CaseSpec, progress: BenchProgress, cold: boolean): Promise<CaseResult> {
  const label = caseLabel(bench, spec);
  progress.startCase(label);
  const session = await bench.setup(ctx, spec);
  const results = new Map<string, VariantResult>(ctx.options.variants.map((v) => [v, { variant: v, runs: [] }]));
  let checksum = session.expected;
  const modes = new Map<string, Record<string, number>>();
  try {
    for (const r of results.values()) {
      const why = session.unavailable?.(r.variant);
      if (why) r.unavailable = why;
    }
    for (let pass = 0; pass <= ctx.options.runs; pass++) {
      for (const r of results.values()) {
        const detail = pass === 0 ? `${r.variant} warm-up` : `${r.variant} run ${pass}/${ctx.options.runs}`;
        if (r.unavailable) {
          progress.tick(detail);
          continue;
        }
        // A turn of the event loop: passes are synchronous work and promises that
        // resolve at once, and Ctrl-C (a signal handler) is only seen between turns.
        await new Promise((r) => setImmediate(r));
        if (cold && pass > 0) dropCaches();
        const got = await session.run(r.variant, { index: pass, warmup: pass === 0 });
        progress.tick(detail);
        if (got.unavailable) {
          r.unavailable = got.unavailable;
          r.runs = [];
          ctx.note(`${label}: variant ${r.variant} cannot run here (${got.unavailable}); not measured`);
          continue;
        }
        if (got.checksum !== undefined) {
          checksum ??= got.checksum;
          if (got.checksum !== checksum) {
            throw new ChecksumError(`${label}: variant ${r.variant} (pass ${pass}) summed ${got.checksum}, expected ${checksum}: ` +
              'the bytes it read are not the bytes written');
          }
        }
        if (!(got.seconds > 0) || !Number.isFinite(got.seconds)) throw new Error(`${label}: variant ${r.variant} timed ${got.seconds} s`);
        ctx.debug('%s %s pass %d: %d bytes, %d ops in %f s', label, r.variant, pass, got.bytes, got.ops, got.seconds);
        if (pass === 0) continue;
        r.runs.push(got);
        const m = modes.get(r.variant) ?? {};
        addModes(m, got.modes);
        modes.set(r.variant, m);
      }
    }
  } finally {
    await session.close();
  }
  for (const r of results.values()) {
    if (r.unavailable) continue;
    r.figures = figures(r.runs);
    const m = modes.get(r.variant);
    if (m && Object.keys(m).length) r.modes = m;
  }
  const base = results.get(bench.baseline)?.figures?.mibps.median;
  for (const r of results.values()) {
    const x = ratio(r.figures?.mibps.median, base);
    if (x !== undefined) r.ratio = x;
  }
  return { spec, variants: [...results.values()], ...(checksum !== undefined ? { checksum } : {}) };
}
