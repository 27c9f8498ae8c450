/** daxvm test-fuzz [--cases N] [--seed S] [--case K] [--keep DIR]: hostile-image fuzzing of fsck and mount. */
import { runFuzzer } from '../reliability/fuzz.js';
import { CliError, EXIT } from '../core/errors.js';

export interface TestFuzzOptions {
  cases: string;
  seed: string;
  case?: string;
  workers?: string;
  timeout: string;
  keep?: string;
  scratch?: string;
}

function count(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new CliError(`--${name} ${v}: an integer of at least ${min}`, EXIT.USAGE);
  return n;
}

export async function cmdTestFuzz(o: TestFuzzOptions): Promise<number> {
  const result = await runFuzzer({
    cases: count('cases', o.cases, 1),
    seed: count('seed', o.seed, 0),
    timeoutMs: count('timeout', o.timeout, 1) * 1000,
    ...(o.case !== undefined ? { only: count('case', o.case, 0) } : {}),
    ...(o.workers !== undefined ? { workers: count('workers', o.workers, 1) } : {}),
    ...(o.keep ? { keep: o.keep } : {}),
    ...(o.scratch ? { scratch: o.scratch } : {}),
  });
  return result.failed === 0 ? EXIT.OK : EXIT.FAILURE;
}
