/** daxvm test-crash [--states N] [--seed S] [--workload NAME] [--keep DIR] [--replay STATE]: crash-state exploration. */
import { runCrashExplorer } from '../reliability/crash.js';
import { WORKLOADS } from '../reliability/workloads.js';
import { CliError, EXIT } from '../core/errors.js';

export interface TestCrashOptions {
  states: string;
  seed: string;
  workload: string;
  keep?: string;
  replay?: string;
  scratch?: string;
  list?: boolean;
}

export function cmdTestCrash(o: TestCrashOptions): number {
  if (o.list) {
    for (const w of WORKLOADS) process.stdout.write(`${w.name.padEnd(8)} ${w.about}\n`);
    return EXIT.OK;
  }
  const states = Number(o.states);
  const seed = Number(o.seed);
  if (!Number.isSafeInteger(states) || states < 1) throw new CliError(`--states ${o.states}: a positive integer`, EXIT.USAGE);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new CliError(`--seed ${o.seed}: a non-negative integer`, EXIT.USAGE);
  if (o.workload !== 'all' && !WORKLOADS.some((w) => w.name === o.workload)) {
    throw new CliError(`no workload ${JSON.stringify(o.workload)}`, EXIT.USAGE, `one of: ${WORKLOADS.map((w) => w.name).join(', ')}, all (--list says what each does)`);
  }
  if (o.replay && o.workload === 'all') throw new CliError('--replay needs the --workload it came from', EXIT.USAGE);
  let result;
  try {
    result = runCrashExplorer({
      states, seed, workload: o.workload,
      ...(o.keep ? { keep: o.keep } : {}),
      ...(o.replay ? { replay: o.replay } : {}),
      ...(o.scratch ? { scratch: o.scratch } : {}),
    });
  } catch (err) {
    if (err instanceof Error && /^(--replay|no workload)/.test(err.message)) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
  return result.failed === 0 ? EXIT.OK : EXIT.FAILURE;
}
