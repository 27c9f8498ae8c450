/** daxvm info POOL|MNT [--json]: geometry, usage, fragmentation, knobs. */
import { statSync } from 'node:fs';
import path from 'node:path';
import { poolInfo, PoolError, type PoolInfo } from '../fs/index.js';
import { daxvmMountAt, readMounts, FSTYPE, topMountAt } from '../core/mountinfo.js';
import { KNOB_FILES } from '../core/format/superblock.js';
import { CliError, EXIT, poolFailure } from '../core/errors.js';
import { formatBytes, percent, table } from '../core/output.js';
import { clearCommand, describeDeadMount, mountHealth } from './dead-mount.js';
import { octal, warnIfLoose } from './pool-mode.js';

export interface InfoOptions {
  json?: boolean;
}

/** A mount point resolves to its pool through /proc/self/mountinfo; anything else is a pool path. */
export function resolvePoolTarget(target: string): { pool: string; mountpoint?: string } {
  const abs = path.resolve(target);
  const mounts = readMounts();
  const m = daxvmMountAt(abs, mounts);
  if (m) return { pool: m.source, mountpoint: abs };
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch { /* not there: the pool path is reported missing below */ }
  if (isDir) {
    const other = topMountAt(abs, mounts);
    throw new CliError(
      `${abs} is a directory, not a daxvm pool or mount` + (other ? ` (it is a ${other.fstype} mount)` : ''),
      EXIT.USAGE,
      'give a pool file or the mount point of a daxvm mount',
    );
  }
  const mountedOn = mounts.find(x => x.fstype === FSTYPE && x.source === abs)?.mountpoint;
  return { pool: abs, ...(mountedOn ? { mountpoint: mountedOn } : {}) };
}

/** "1234 files with data, 1.02 extents per file (max 7; 12 in more than one)". */
export function fileExtentsLine(x: PoolInfo['fileExtents']): string {
  return `${x.files} files with data, ${x.avgExtentsPerFile} extents per file (max ${x.maxExtents}; ${x.fragmentedFiles} in more than one)`;
}

export function formatInfo(i: PoolInfo, mountpoint?: string, mode?: { mode: string; uid: number; gid: number; loose: boolean }): string {
  const used = i.blocks - i.freeBlocks;
  const f = i.fragmentation;
  const rows: [string, string][] = [
    ['pool', i.path],
    ['mounted on', mountpoint ?? '(not mounted)'],
    ...(mode ? [['file mode', `${mode.mode}, uid ${mode.uid} gid ${mode.gid}${mode.loose ? ': OTHER USERS CAN ACCESS IT' : ''}`] as [string, string]] : []),
    ['format', `version ${i.formatVersion}, ${i.clean ? 'clean' : 'not clean (in use, or not unmounted cleanly)'}`],
    ['incompatible features', i.incompatFeatures.length ? i.incompatFeatures.join(', ') : 'none'],
    ['size', `${formatBytes(i.size)}: ${i.blocks} blocks of ${formatBytes(i.blockSize)}`],
    ['used', `${formatBytes(used * i.blockSize)} (${used} blocks, ${percent(used, i.blocks)})`],
    ['free', `${formatBytes(i.freeBlocks * i.blockSize)} (${i.freeBlocks} blocks)`],
    ['inodes', `${i.inodes - i.freeInodes} used of ${i.inodes} (${i.freeInodes} free)`],
    ['free extents', `${f.freeExtents}, largest ${f.largestFreeExtentBlocks} blocks (${formatBytes(f.largestFreeExtentBlocks * i.blockSize)})`],
    ['free 2 MiB regions', `${f.freeHugeRegions}`],
    ['file extents', fileExtentsLine(i.fileExtents)],
  ];
  // Named as the .daxvm/ knob files spell them (what `cat MNT/.daxvm/NAME` reads).
  for (const [file, key] of Object.entries(KNOB_FILES)) rows.push([`knob ${file}`, String(i.knobs[key])]);
  return table(rows);
}

export async function cmdInfo(target: string, opts: InfoOptions): Promise<number> {
  const { pool, mountpoint } = resolvePoolTarget(target);
  // A mount whose daemon is gone still reads as mounted in mountinfo: say so, and how to clear it.
  const health = mountpoint ? await mountHealth(mountpoint) : undefined;
  if (mountpoint && health === 'dead') {
    process.stderr.write(`daxvm: ${describeDeadMount(mountpoint)}\ndaxvm: clear it with: ${clearCommand(mountpoint)}\n`);
  }
  const mode = warnIfLoose(pool);
  let info: PoolInfo;
  try {
    info = poolInfo(pool);
  } catch (err) {
    if (err instanceof PoolError) throw poolFailure(err, EXIT.OPERATIONAL);
    throw new CliError(`cannot read ${pool}: ${(err as Error).message}`, EXIT.OPERATIONAL);
  }
  const poolMode = mode ? { mode: octal(mode.mode), uid: mode.uid, gid: mode.gid, loose: mode.loose } : null;
  const mountState = health ?? 'not mounted';
  if (opts.json) process.stdout.write(JSON.stringify({ ...info, mountpoint: mountpoint ?? null, mountState, poolMode }, null, 2) + '\n');
  else process.stdout.write(formatInfo(info, mountpoint && health === 'dead' ? `${mountpoint} (DEAD: its daemon is gone; clear it with: ${clearCommand(mountpoint)})` : mountpoint, poolMode ?? undefined));
  return EXIT.OK;
}
