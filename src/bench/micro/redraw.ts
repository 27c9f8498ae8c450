/**
 * `daxvm bench NAME --from RUN.json --chart FILE.svg`: the chart (and the
 * table) of a run already made, from its JSON, with no new measurement: the
 * same figures drawn again (after a change to the renderer, or from a run
 * that was interrupted).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CliError, EXIT } from '../../core/errors.js';
import { writeChart } from './chart.js';
import type { BenchJson } from './json.js';
import { checkOutputPath } from './output.js';
import type { CaseResult } from './runner.js';
import { formatTable } from './table.js';
import type { BenchDef } from './types.js';

/** The cases of a run's JSON, as the runner had them (in the order of its records). */
export function casesOf(doc: BenchJson): CaseResult[] {
  const byCase = new Map<string, CaseResult>();
  for (const r of doc.records) {
    const key = JSON.stringify([r.size, r.count, r.threads, r.params ?? {}]);
    let c = byCase.get(key);
    if (!c) {
      c = { spec: { size: r.size, count: r.count, threads: r.threads, ...(r.params ? { params: r.params } : {}) }, variants: [] };
      if (r.checksum !== null) c.checksum = r.checksum;
      byCase.set(key, c);
    }
    c.variants.push({
      variant: r.variant,
      runs: r.runs.map((x) => ({ seconds: x.seconds, bytes: x.bytes, ops: x.ops, ...(x.untimed_seconds ? { untimed: x.untimed_seconds } : {}) })),
      ...(r.mibps && r.ops_per_s ? { figures: { mibps: r.mibps, opsPerS: r.ops_per_s } } : {}),
      ...(r.ratio_to_baseline !== null ? { ratio: r.ratio_to_baseline } : {}),
      ...(r.modes ? { modes: r.modes } : {}),
      ...(r.unavailable ? { unavailable: r.unavailable } : {}),
    });
    if (r.checksum !== null) c.checksum ??= r.checksum;
  }
  return [...byCase.values()];
}

export async function redraw(bench: BenchDef, from: string, chart: string | undefined): Promise<number> {
  let doc: BenchJson;
  try {
    doc = JSON.parse(readFileSync(from, 'utf8')) as BenchJson;
  } catch (err) {
    // JSON.parse's own message quotes the file's first bytes, binary or not: say what it is instead.
    const why = err instanceof SyntaxError ? 'not JSON' : (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new CliError(`--from ${from}: ${why}`, EXIT.USAGE, 'give the JSON a run wrote with --json FILE');
  }
  if (doc.bench !== bench.name || !Array.isArray(doc.records)) {
    throw new CliError(`--from ${from} is ${doc.bench ? `a run of bench ${doc.bench}` : 'not the JSON of a bench run'}, not of ${bench.name}`, EXIT.USAGE);
  }
  if (chart !== undefined) checkOutputPath('--chart', chart);
  const cases = casesOf(doc);
  process.stdout.write(formatTable(bench, cases, { runs: doc.options.runs, cache: doc.environment.cache.done }));
  if (chart !== undefined) {
    await writeChart(chart, bench, cases, doc.environment, doc.options.runs);
    process.stderr.write(`chart: ${resolve(chart)} (drawn from ${resolve(from)}, measured ${doc.started})\n`);
  }
  return EXIT.OK;
}
