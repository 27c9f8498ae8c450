/** The benches of `daxvm bench`: one line each. */
import { appendBench } from './append.js';
import { dbReadBench } from './db-read.js';
import { dbWriteBench } from './db-write.js';
import { mtBench } from './mt.js';
import { preloadBench } from './preload.js';
import { readBench } from './read.js';
import type { BenchDef } from './types.js';

export const BENCHES: readonly BenchDef[] = [
  readBench,
  mtBench,
  appendBench,
  dbReadBench,
  dbWriteBench,
  preloadBench,
];

export function findBench(name: string): BenchDef | undefined {
  return BENCHES.find((b) => b.name === name);
}
