/**
 * The environment a bench ran in, for its JSON: the machine, the kernel,
 * node, daxvm's version and commit, the mount and pool, the knobs, the
 * pool's fragmentation (`daxvm info --json`) and whether it was aged.
 * Figures without this are figures of nowhere.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMarker } from '../age/tree.js';
import { mainScript } from '../../core/paths.js';
import type { BenchMount } from './mount.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export interface Environment {
  machine: { cpu: string; cores: number; memoryBytes: number };
  kernel: string;
  node: string;
  daxvm: { version: string; commit: string | null };
  mount: {
    mnt: string;
    pool: string;
    /** A temporary pool made for this run. */
    temporary: boolean;
    nativeDir: string | null;
    /** Knob values when the run started (after the bench set the ones it needs). */
    knobs: Record<string, number | string | Record<string, number>>;
    /** `daxvm info --json`'s fragmentation, usage and geometry; null if it could not be read. */
    info: Record<string, unknown> | null;
    /**
     * Whether the image was aged: the `.aged.json` markers `daxvm age` left in
     * the mount's top directories (where, status, parameters), false when
     * there are none, null when the mount could not be read.
     */
    aged: Array<{ dir: string; status: string; params: unknown; finished: string | null }> | false | null;
  };
  cache: { asked: 'warm' | 'cold'; done: 'warm' | 'cold'; note?: string };
}

export function daxvmVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function gitCommit(): string | null {
  const r = spawnSync('git', ['-C', ROOT, 'rev-parse', 'HEAD'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
  return r.stdout.trim() + (dirty.status === 0 && dirty.stdout.trim() ? '-dirty' : '');
}

/** `daxvm info MNT --json`, in a child (this process may read the pool; the child reads it the same way). */
function poolInfo(mnt: string): Record<string, unknown> | null {
  const r = spawnSync(process.execPath, [mainScript(), 'info', mnt, '--json'], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  try {
    const i = JSON.parse(r.stdout) as Record<string, unknown>;
    delete i.knobs; // recorded beside, as read through the mount
    return i;
  } catch {
    return null;
  }
}

function agedTrees(mnt: string): Environment['mount']['aged'] {
  let names: string[];
  try {
    names = readdirSync(mnt, { withFileTypes: true }).filter((d) => d.isDirectory() && d.name !== '.daxvm').map((d) => d.name);
  } catch {
    return null;
  }
  const found: NonNullable<Environment['mount']['aged']> = [];
  for (const name of names) {
    try {
      const m = readMarker(join(mnt, name));
      if (m) found.push({ dir: join(mnt, name), status: m.status, params: m.params, finished: m.finished ?? null });
    } catch { /* not a marker we can read: not counted */ }
  }
  return found.length ? found : false;
}

export function environment(m: BenchMount, cache: Environment['cache']): Environment {
  return {
    machine: { cpu: cpus()[0]?.model.trim() ?? 'unknown', cores: availableParallelism(), memoryBytes: totalmem() },
    kernel: release(),
    node: process.version,
    daxvm: { version: daxvmVersion(), commit: gitCommit() },
    mount: {
      mnt: m.mnt,
      pool: m.pool,
      temporary: m.temp !== undefined,
      nativeDir: m.nativeDir || null,
      knobs: m.knobs(),
      info: poolInfo(m.mnt),
      aged: agedTrees(m.mnt),
    },
    cache,
  };
}
