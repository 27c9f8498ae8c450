/** The benches of `daxvm bench`: one line each. */
import { mtBench } from './mt.js';
import { readBench } from './read.js';
import type { BenchDef } from './types.js';

export const BENCHES: readonly BenchDef[] = [
  readBench,
  mtBench,
];

export function findBench(name: string): BenchDef | undefined {
  return BENCHES.find((b) => b.name === name);
}
