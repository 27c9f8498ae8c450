/**
 * The full host disk (issue 12, point 2) under load: each round mounts a
 * small tmpfs (HOST_MIB) in the work directory, makes a sparse pool twice
 * its size on it, and runs the fill round of load-fill.ts: three writers and
 * the metadata client until every writer met ENOSPC, which now comes from
 * the host. The round checks what the fill round checks (ENOSPC only, every
 * returned write read back, statfs full and then the space back after the
 * deletes, half of it written anew, a clean unmount: the daemon lived, fsck
 * clean) and that the host really was full. Needs root (mount -t tmpfs);
 * without it the part is skipped, saying so. The tmpfs is unmounted at the
 * end of the round, and by unmountHosts() on an abort.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoadContext } from './load-context.js';
import { fillRound, type FillRound } from './load-fill.js';
import { statfsBytes } from './load-mount.js';

/** The host file system's size, and the pool's (sparse, larger: the host fills first). */
const HOST_MIB = 48;
const POOL_SIZE = '128M';
const MiB = 1 << 20;

/** tmpfs mounts of ours still mounted (for an abort). */
const mounted = new Set<string>();

function mountTmpfs(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${HOST_MIB}m,mode=0755`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount -t tmpfs on ${dir} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  mounted.add(dir);
}

/** Unmount one of our tmpfs mounts (the daemon may still be closing the pool: retried, lazily at last). */
async function unmountTmpfs(dir: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (spawnSync('umount', [dir]).status === 0) {
      mounted.delete(dir);
      return;
    }
    await sleep(100);
  }
  spawnSync('umount', ['-l', dir]);
  mounted.delete(dir);
}

/** On an abort (synchronous): detach every tmpfs of ours. */
export function unmountHosts(): void {
  for (const dir of mounted) spawnSync('umount', ['-l', dir]);
  mounted.clear();
}

export async function runHostFull(ctx: LoadContext, rounds: number, seed0: number): Promise<FillRound[]> {
  if (process.getuid?.() !== 0) {
    ctx.log(`host-full: skipped (${rounds} round(s)): mounting a small tmpfs for the pool needs root`);
    return [];
  }
  const res: FillRound[] = [];
  for (let i = 0; i < rounds; i++) {
    const seed = seed0 + i;
    const dir = path.join(ctx.work, `hostfull-${i}`);
    const hostDir = path.join(dir, 'host');
    let fr: FillRound;
    let hostFreeAtFull = -1;
    try {
      mountTmpfs(hostDir);
      fr = await fillRound(ctx, i, seed, dir, {
        poolDir: hostDir,
        size: POOL_SIZE,
        hostFull: () => {
          hostFreeAtFull = statfsBytes(hostDir).avail;
          // The daemon takes host blocks 2 MiB at a time: a chunk's worth may be left.
          return hostFreeAtFull > 4 * MiB ? `every writer met ENOSPC with ${hostFreeAtFull} bytes still available on the host` : undefined;
        },
      });
    } catch (err) {
      fr = { round: i, seed, full: 'host', commit: '', enospc: {}, bytesWritten: 0, bytesVerified: 0, metaOps: 0, freeBefore: 0, freeFull: 0, freeAfter: 0, problem: `harness error: ${(err as Error).stack ?? String(err)}` };
    }
    res.push(fr);
    if (fr.problem) {
      ctx.fail({ part: 'hostfull', round: i, seed, problem: fr.problem, replay: `npx daxvm test-load --only hostfull --host-full-rounds 1 --seed ${seed}` }, [dir]);
    } else {
      const e = Object.entries(fr.enospc).map(([k, v]) => `${k} ${v}`).join(', ');
      ctx.log(`host-full round ${i} (seed ${seed}): a ${POOL_SIZE} sparse pool on a ${HOST_MIB} MiB tmpfs; ${(fr.bytesWritten / MiB).toFixed(1)} MiB written and read back, ` +
        `ENOSPC from ${e}; host ${(hostFreeAtFull / MiB).toFixed(1)} MiB available when full; df free ${(fr.freeBefore / MiB).toFixed(1)} → ` +
        `${(fr.freeFull / MiB).toFixed(1)} → ${(fr.freeAfter / MiB).toFixed(1)} MiB; the daemon lived, fsck clean`);
    }
    await unmountTmpfs(hostDir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return res;
}
