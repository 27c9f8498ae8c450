/**
 * The crash explorer's workloads, by name. Each runs on the fs layer
 * through a Driver (driver.ts), which applies every operation to the real
 * file system and to a Model; the same seed gives the same operations,
 * stores and barriers.
 */
import type { Workload } from './driver.js';
import { data, orphan, ppt, prezero, vouch } from './workloads-data.js';
import { prealloc } from './workloads-prealloc.js';
import { random } from './workloads-random.js';
import { journal, names, xattr } from './workloads-tree.js';

export { Driver, type Workload } from './driver.js';

/** In the order they run (the budget of states is shared out in it). */
export const WORKLOADS: Workload[] = [names, data, xattr, ppt, orphan, journal, prezero, random, prealloc, vouch];

export function workloadByName(name: string): Workload | undefined {
  return WORKLOADS.find((w) => w.name === name);
}
