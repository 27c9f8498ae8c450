/**
 * daxvm bench NAME [options] | daxvm bench --list: the microbenchmarks of
 * src/bench/micro (the paper's, measured through a real mount).
 */
import { findBench, BENCHES } from '../bench/micro/registry.js';
import { runBench } from '../bench/micro/run-bench.js';
import type { RawBenchOptions } from '../bench/micro/options.js';
import { CliError, EXIT } from '../core/errors.js';

export interface BenchCommandOptions extends RawBenchOptions {
  list?: boolean;
}

function listing(): string {
  const w = Math.max(...BENCHES.map((b) => b.name.length));
  const lines: string[] = [];
  for (const b of BENCHES) {
    lines.push(`${b.name.padEnd(w)}  ${b.summary}`);
    const vw = Math.max(...b.variants.map((v) => v.name.length));
    for (const v of b.variants) lines.push(`${' '.repeat(w)}    ${v.name.padEnd(vw)}  ${v.description}${v.name === b.baseline ? ' (baseline)' : ''}`);
  }
  return lines.join('\n') + '\n';
}

export async function cmdBench(name: string | undefined, o: BenchCommandOptions): Promise<number> {
  if (o.list) {
    process.stdout.write(listing());
    return EXIT.OK;
  }
  const names = BENCHES.map((b) => b.name).join(', ');
  if (name === undefined) throw new CliError('daxvm bench needs the name of a bench', EXIT.USAGE, `one of: ${names} (daxvm bench --list)`);
  const bench = findBench(name);
  if (!bench) throw new CliError(`no bench named '${name}'`, EXIT.USAGE, `one of: ${names} (daxvm bench --list)`);
  if (o.from !== undefined) return (await import('../bench/micro/redraw.js')).redraw(bench, o.from, o.chart);
  return runBench(bench, o);
}
