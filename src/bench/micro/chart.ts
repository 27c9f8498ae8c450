/**
 * The chart of a bench run, an SVG drawn by vega-lite + vega in Node (no
 * browser, no canvas): median MiB/s per variant (one colour each) over the
 * sizes (or the thread counts), log scale, with the min..max of the runs as
 * error bars; a panel per thread count (or size) and per value of the
 * bench's own params (e.g. pattern=rand) when there are several.
 * The title names the bench and the machine.
 */
import { writeFileSync } from 'node:fs';
import { formatBytes } from '../../cli/format.js';
import type { Environment } from './env.js';
import type { CaseResult } from './runner.js';
import type { BenchDef } from './types.js';

interface Point {
  x: string;
  order: number;
  panel: string;
  variant: string;
  median: number;
  min: number;
  max: number;
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
    panel: panelOf(c),
    variant: v.variant,
    median: v.figures!.mibps.median,
    min: v.figures!.mibps.min,
    max: v.figures!.mibps.max,
  })));
  const xOrder = [...new Map(points.map((p) => [p.x, p.order])).entries()].sort((a, b) => a[1] - b[1]).map(([x]) => x);
  const xTitle = byThreads ? 'worker threads' : `${bench.countLabel === 'files' ? 'file' : 'access'} size`;
  const x = { field: 'x', type: 'ordinal', sort: xOrder, title: xTitle, axis: { labelAngle: 0 } };
  const y = { field: 'median', type: 'quantitative', scale: { type: 'log' }, title: `MiB/s (median of ${runs}; bars: min..max)` };
  const color = { field: 'variant', type: 'nominal', sort: variants, title: 'variant', scale: { scheme: 'category10' } };
  const layer = [
    { mark: { type: 'line', point: { size: 50 } }, encoding: { x, y, color } },
    { mark: { type: 'rule' }, encoding: { x, y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' }, color } },
  ];
  const m = env.machine;
  const title = {
    text: `daxvm bench ${bench.name}: MiB/s by ${byThreads ? 'thread count' : 'size'}, ${env.cache.done} cache`,
    subtitle: `${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB, Linux ${env.kernel}, node ${env.node}, daxvm ${env.daxvm.version}`,
  };
  const inner = { width: 420, height: 280, layer };
  const spec = panels
    ? { title, data: { values: points }, facet: { column: { field: 'panel', type: 'nominal', title: null } }, spec: inner }
    : { title, data: { values: points }, ...inner };
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
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
  writeFileSync(file, await chartSvg(bench, cases, env, runs));
}
