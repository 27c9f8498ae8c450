/**
 * The space a run needs, checked before it starts: a case's files are
 * written on the mount (and, for the native variants, in the host
 * directory), and removed before the next case, so the largest case must
 * fit. A temporary pool is sparse: its blocks come from the host as they
 * are written, so there the host's free space is what counts. Better to say
 * "this needs 1.9 TiB, the mount has 3.8 GiB" at once than ENOSPC after
 * fifteen minutes.
 */
import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { CliError, EXIT } from '../../core/errors.js';
import { formatBytes } from '../../core/output.js';
import { caseLabel } from './runner.js';
import type { BenchDef, BenchOptions, CaseSpec } from './types.js';

const BLOCK = 4096;

/** Per file: its blocks, one more for a page-table node or a directory record, and 1% for the rest of the metadata. */
function onDisk(size: number, count: number): number {
  const blocks = Math.ceil(size / BLOCK) + 1;
  return Math.ceil(count * blocks * BLOCK * 1.01);
}

export interface Need {
  label: string;
  /** On the mount. */
  mount: number;
  /** In the host directory of the native variants. */
  native: number;
}

export function needs(bench: BenchDef, cases: CaseSpec[], options: BenchOptions, native: boolean): Need[] {
  return cases.map((c) => {
    const bytes = bench.scratchBytes ? Math.ceil(bench.scratchBytes(c, options) * 1.01) : onDisk(c.size, c.count);
    return { label: caseLabel(bench, c), mount: bytes, native: native ? bytes : 0 };
  });
}

/** A file system the run writes to: where, its free bytes, and which of a case's needs it holds. */
export interface Store {
  what: string;
  free: number;
  takes: Array<'mount' | 'native'>;
}

function free(dir: string): number {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

function device(path: string): number | undefined {
  try {
    return statSync(path).dev;
  } catch {
    return undefined;
  }
}

/**
 * Before a temporary pool is made: it is sparse in `poolDir`, so the host
 * there holds the mount's files; the native ones go to `nativeDir` (the
 * same file system when it is the same device).
 */
export function hostStores(poolDir: string, nativeDir: string | undefined): Store[] {
  if (nativeDir === undefined || device(poolDir) === device(nativeDir)) {
    return [{ what: `the host (${poolDir}, for the sparse temporary pool${nativeDir !== undefined ? ' and the native files' : ''})`, free: free(poolDir), takes: ['mount', 'native'] }];
  }
  return [
    { what: `the host (${poolDir}, for the sparse temporary pool)`, free: free(poolDir), takes: ['mount'] },
    { what: `the host (${nativeDir}, for the native files)`, free: free(nativeDir), takes: ['native'] },
  ];
}

/** A mount to use: the mount's own free space, and the native directory's. */
export function mountStores(mnt: string, nativeDir: string): Store[] {
  return [
    { what: mnt, free: free(mnt), takes: ['mount'] },
    ...(nativeDir ? [{ what: `the host (${dirname(nativeDir)}, for the native files)`, free: free(nativeDir), takes: ['native' as const] }] : []),
  ];
}

/** Throws a CliError naming the first case that does not fit; returns a line saying what the run needs. */
export function checkSpace(list: Need[], stores: Store[]): string {
  const fix = 'run fewer files (--files N), leave out the largest --sizes, or bench a larger pool (--mnt)';
  for (const st of stores) {
    const need = (n: Need): number => st.takes.reduce((sum, k) => sum + n[k], 0);
    const worst = list.reduce<Need | undefined>((a, b) => (a === undefined || need(b) > need(a) ? b : a), undefined);
    if (worst === undefined || need(worst) === 0) continue;
    if (need(worst) > st.free) {
      throw new CliError(`not enough space for this run: ${worst.label} needs ${formatBytes(need(worst))} on ${st.what}, which has ${formatBytes(st.free)} free`, EXIT.FAILURE, fix);
    }
  }
  return 'space: ' + stores.map((st) => {
    const most = Math.max(...list.map((n) => st.takes.reduce((sum, k) => sum + n[k], 0)));
    return `${formatBytes(most)} of ${formatBytes(st.free)} free on ${st.what}`;
  }).join('; ') + ' (the largest case)';
}
