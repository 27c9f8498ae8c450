/**
 * The table on stdout, at most 100 columns for the read bench's six
 * variants: one row per case (size, count, threads), per variant its median
 * MiB/s with the spread (± half the min..max range, as a share of the
 * median); then the ratios to the baseline; then files (or accesses) per
 * second; then what the library's mappings were.
 */
import { formatBytes, textTable } from '../../core/output.js';
import type { CaseResult } from './runner.js';
import { spreadShare, type Summary } from './stats.js';
import type { BenchDef } from './types.js';

function grid(head: string[], rows: string[][]): string {
  return textTable(head, rows, { rule: true });
}

/** Prose folded at spaces to lines of at most `width` columns (continuation lines indented by two). */
export function fold(text: string, width = 100): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = '  ' + word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** 3 significant digits at least, no exponent; from 100 000 on in k and M (the columns stay narrow). */
export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return '-';
  if (x >= 1e7) return `${Math.round(x / 1e6)}M`;
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e5) return `${Math.round(x / 1e3)}k`;
  if (x >= 100) return Math.round(x).toString();
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

const cell = (s: Summary): string => `${fmtNum(s.median)} ±${Math.round(spreadShare(s) * 100)}%`;

export function formatTable(bench: BenchDef, cases: CaseResult[], o: { runs: number; cache: string }): string {
  const variants = cases[0]?.variants.map((v) => v.variant) ?? [];
  const showThreads = bench.chartX === 'threads' || cases.some((c) => c.spec.threads > 1);
  const paramKeys = [...new Set(cases.flatMap((c) => Object.keys(c.spec.params ?? {})))];
  const lead = (c: CaseResult): string[] => [
    formatBytes(c.spec.size), String(c.spec.count), ...(showThreads ? [String(c.spec.threads)] : []),
    ...paramKeys.map((k) => String(c.spec.params?.[k] ?? '')),
  ];
  const leadHead = ['size', bench.countLabel, ...(showThreads ? ['threads'] : []), ...paramKeys];
  const out: string[] = [];
  out.push(...fold(`daxvm bench ${bench.name}: medians of ${o.runs} run${o.runs > 1 ? 's' : ''}, ${o.cache} cache; ` +
    `± is half the min..max range as a share of the median; x is the ratio to '${bench.baseline}'`));
  // The ratios in a grid of their own: beside each median they made a row of 129 columns; a terminal has 100.
  const mib = cases.map((c) => [...lead(c), ...c.variants.map((v) => (v.figures ? cell(v.figures.mibps) : 'n/a'))]);
  out.push('', 'MiB/s', grid([...leadHead, ...variants], mib));
  const ratios = cases.map((c) => [...lead(c), ...c.variants.map((v) => (v.ratio !== undefined ? `${v.ratio.toFixed(2)}x` : '-'))]);
  out.push('', `x '${bench.baseline}' (median MiB/s over the baseline's)`, grid([...leadHead, ...variants], ratios));
  const ops = cases.map((c) => [...lead(c), ...c.variants.map((v) => (v.figures ? cell(v.figures.opsPerS) : 'n/a'))]);
  out.push('', `${bench.countLabel}/s`, grid([...leadHead, ...variants], ops));
  const notes: string[] = [];
  for (const c of cases) {
    for (const v of c.variants) {
      const where = [formatBytes(c.spec.size), ...(showThreads ? [`${c.spec.threads} threads`] : []),
        ...paramKeys.map((k) => `${k}=${c.spec.params?.[k] ?? ''}`)].join(', ');
      if (v.unavailable) notes.push(`${v.variant} (${where}): not measured, ${v.unavailable}`);
    }
  }
  const modes = new Map<string, Record<string, number>>();
  for (const c of cases) {
    for (const v of c.variants) {
      const m = modes.get(v.variant) ?? {};
      for (const [k, n] of Object.entries(v.modes ?? {})) m[k] = (m[k] ?? 0) + n;
      modes.set(v.variant, m);
    }
  }
  const mapped = [...modes].filter(([, m]) => Object.keys(m).length > 0)
    .map(([v, m]) => `${v} ${Object.entries(m).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (mapped.length) notes.push(`mappings made in the timed runs: ${mapped.join('; ')}`);
  const sums = cases.filter((c) => c.checksum !== undefined).length;
  if (sums) notes.push(`checksums: every pass of every variant agreed (${sums} case${sums > 1 ? 's' : ''})`);
  if (notes.length) out.push('', ...notes.flatMap((n) => fold(n)));
  return out.join('\n') + '\n';
}
