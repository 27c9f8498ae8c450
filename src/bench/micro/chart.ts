/**
 * The chart of a bench run, an SVG drawn by vega-lite + vega in Node (no
 * browser, no canvas): median MiB/s per variant (one colour, shape and dash
 * each, the same in every chart) over the
 * sizes (or the thread counts), log scale, with the min..max of the runs as
 * error bars; a panel per thread count (or size) and per value of the
 * bench's own params (e.g. pattern=rand) when there are several.
 * The title names the bench, whether the image was aged, and the machine.
 */
import { writeFileSync } from 'node:fs';
import { CliError, EXIT } from '../../core/errors.js';
import { formatBytes } from '../../core/output.js';
import type { Environment } from './env.js';
import type { CaseResult } from './runner.js';
import type { BenchDef } from './types.js';

interface Point {
  x: string;
  order: number;
  /** Where it is drawn: the index of its x, moved a little to the side by its variant. */
  pos: number;
  /** What a screen reader says of the point (the SVG's aria-label). */
  label: string;
  panel: string;
  variant: string;
  median: number;
  min: number;
  max: number;
}

/** Every variant of every bench, its look: same name, same colour, in every chart. */
const STYLES: Record<string, { color: string; shape: string; dash: number[] }> = {
  read: { color: '#1f77b4', shape: 'circle', dash: [1, 0] },
  write: { color: '#1f77b4', shape: 'circle', dash: [1, 0] }, // write is append's and db-write's read: the syscall through the mount
  mmap: { color: '#ff7f0e', shape: 'square', dash: [1, 0] },
  populate: { color: '#8c564b', shape: 'triangle-up', dash: [6, 3] },
  daxvm: { color: '#d62728', shape: 'diamond', dash: [1, 0] },
  'daxvm-nosync': { color: '#e377c2', shape: 'triangle-down', dash: [6, 3] },
  'daxvm-ephemeral': { color: '#bcbd22', shape: 'triangle-down', dash: [6, 3] },
  'daxvm-batching': { color: '#17becf', shape: 'triangle-up', dash: [2, 2] },
  native: { color: '#2ca02c', shape: 'cross', dash: [8, 4] },
  'native-mmap': { color: '#7f7f7f', shape: 'cross', dash: [2, 2] },
};
/** How far apart two variants are drawn at one x, as a share of the step between two x values. */
const DODGE = 0.035;
const OTHER = ['#9467bd', '#393b79', '#637939', '#8c6d31'];

export function variantStyle(name: string, i: number): { color: string; shape: string; dash: number[] } {
  return STYLES[name] ?? { color: OTHER[i % OTHER.length]!, shape: 'circle', dash: [4, 2] };
}

/** " on an aged image" / " on a fresh image": db-read fresh and aged must not look alike. */
function imageNote(env: Environment): string {
  const aged = env.mount.aged;
  if (aged === null) return '';
  return aged === false || aged.length === 0 ? ' (fresh image)' : ' (aged image: daxvm age)';
}

function noChartLibraries(err: unknown): CliError {
  return new CliError(`a chart needs vega and vega-lite, which are not installed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, EXIT.FAILURE,
    'install them beside daxvm (npm install vega vega-lite), or leave out --chart');
}

/** Before a run with --chart: the chart libraries are there (found, not loaded), or say so now rather than after the run. */
export function checkChartLibraries(): void {
  for (const name of ['vega', 'vega-lite']) {
    try {
      import.meta.resolve(name);
    } catch (err) {
      throw noChartLibraries(err);
    }
  }
}

export async function chartSvg(bench: BenchDef, cases: CaseResult[], env: Environment, runs: number): Promise<string> {
  const byThreads = bench.chartX === 'threads';
  // A panel per thread count (or size) and per value of the bench's own params (e.g. pattern=rand).
  const panelOf = (c: CaseResult): string => [
    byThreads ? `${formatBytes(c.spec.size)} files` : `${c.spec.threads} thread${c.spec.threads > 1 ? 's' : ''}`,
    ...Object.entries(c.spec.params ?? {}).map(([k, v]) => `${k}=${v}`),
  ].join(', ');
  const panels = new Set(cases.map(panelOf)).size > 1;
  const variants = cases[0]?.variants.map((v) => v.variant) ?? [];
  const points: Point[] = cases.flatMap((c) => c.variants.filter((v) => v.figures).map((v) => ({
    x: byThreads ? String(c.spec.threads) : formatBytes(c.spec.size),
    order: byThreads ? c.spec.threads : c.spec.size,
    pos: 0,
    label: `${v.variant}, ${byThreads ? `${c.spec.threads} threads` : formatBytes(c.spec.size)}: ${v.figures!.mibps.median.toPrecision(3)} MiB/s`,
    panel: panelOf(c),
    variant: v.variant,
    median: v.figures!.mibps.median,
    min: v.figures!.mibps.min,
    max: v.figures!.mibps.max,
  })));
  const xOrder = [...new Map(points.map((p) => [p.x, p.order])).entries()].sort((a, b) => a[1] - b[1]).map(([x]) => x);
  const xTitle = byThreads ? 'worker threads' : `${bench.countLabel === 'files' ? 'file' : 'access'} size`;
  // nice: false: the axis spans the data, not the powers of ten around it (no empty band under the lowest line).
  const y = { field: 'median', type: 'quantitative', scale: { type: 'log', nice: false, padding: 12 }, title: `MiB/s (median of ${runs}; bars: min..max)` };
  // The same colour, shape and dash for a variant in every chart (not the order it came in); dashes and
  // shapes keep a line that lies on another one visible.
  const shown = variants.filter((v) => points.some((p) => p.variant === v));
  const style = shown.map(variantStyle);
  // Each variant drawn a little to the side of the next (DODGE of the step between two x values): equal
  // figures sit side by side, none hidden under another. The axis labels the x values at their indexes.
  for (const p of points) p.pos = xOrder.indexOf(p.x) + (shown.indexOf(p.variant) - (shown.length - 1) / 2) * DODGE;
  const x = {
    field: 'pos', type: 'quantitative', title: xTitle,
    scale: { domain: [-0.5, xOrder.length - 0.5], nice: false, zero: false },
    axis: { values: xOrder.map((_, i) => i), labelExpr: `${JSON.stringify(xOrder)}[datum.value]`, labelAngle: 0, grid: false },
  };
  const legend = { field: 'variant', type: 'nominal', sort: shown, title: 'variant' };
  const color = { ...legend, scale: { domain: shown, range: style.map((s) => s.color) } };
  const shape = { ...legend, scale: { domain: shown, range: style.map((s) => s.shape) } };
  const strokeDash = { ...legend, scale: { domain: shown, range: style.map((s) => s.dash) } };
  const layer = [
    { mark: { type: 'line', strokeWidth: 2, opacity: 0.85 }, encoding: { x, y, color, strokeDash } },
    { mark: { type: 'rule', opacity: 0.7 }, encoding: { x, y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' }, color } },
    { mark: { type: 'point', filled: true, size: 55, opacity: 0.9 }, encoding: { x, y, color, shape, description: { field: 'label', type: 'nominal' } } },
  ];
  const m = env.machine;
  const title = {
    text: `daxvm bench ${bench.name}${imageNote(env)}: MiB/s by ${byThreads ? 'thread count' : 'size'}, ${env.cache.done} cache`,
    subtitle: [`${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB`, `Linux ${env.kernel}, node ${env.node}, daxvm ${env.daxvm.version}`],
    anchor: 'start',
  };
  const inner = { width: panels ? 360 : 520, height: 300, layer };
  const config = { legend: { orient: 'right' }, padding: 8 };
  const spec = panels
    ? { title, config, data: { values: points }, facet: { column: { field: 'panel', type: 'nominal', title: null } }, spec: inner }
    : { title, config, data: { values: points }, ...inner };
  // Loaded here only: a program that uses the library never loads (nor needs to install) them.
  let vega: typeof import('vega');
  let vl: typeof import('vega-lite');
  try {
    [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  } catch (err) {
    throw noChartLibraries(err);
  }
  // The spec is built above from our own fields; vega-lite checks it at compile.
  const compiled = vl.compile(spec as unknown as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function writeChart(file: string, bench: BenchDef, cases: CaseResult[], env: Environment, runs: number): Promise<void> {
  const svg = await chartSvg(bench, cases, env, runs);
  try {
    writeFileSync(file, svg);
  } catch (err) {
    // Checked before the run; the directory can still go or fill up since: a message, not a stack.
    throw new CliError(`--chart ${file}: cannot write it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, EXIT.FAILURE);
  }
}
