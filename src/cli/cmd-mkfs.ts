/** daxvm mkfs POOL [--size 4G] [--force] [--group NAME] [--json] */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { mkfs, PoolError } from '../fs/index.js';
import { PoolError as MediaPoolError } from '../media/pool.js';
import { readMounts, FSTYPE } from '../fuse/mountinfo.js';
import { CliError, EXIT, poolFailure } from './errors.js';
import { formatBytes, parseSize } from './format.js';
import { DEFAULT_POOL_SIZE } from './paths.js';
import { checkGroupMember, octal, resolveGroup } from './pool-mode.js';
import { progressBar } from './progress.js';

export interface MkfsOptions {
  size?: string;
  force?: boolean;
  /** 0660 and this group (name or gid) instead of 0600. */
  group?: string;
  json?: boolean;
}

export interface MkfsResult {
  pool: string;
  size: number;
  /** The pool file's permission bits, e.g. "0600". */
  mode: string;
  blocks: number;
  inodes: number;
  dataBlocks: number;
}

/** Create a pool (also used by `daxvm mount` for the default pool). Throws CliError. */
export function makePool(pool: string, size: number, force: boolean, group?: { gid: number; name: string }): MkfsResult {
  if (existsSync(pool) && !force) {
    throw new CliError(`${pool} already exists`, EXIT.FAILURE, 'add --force to overwrite it (everything in it is lost)');
  }
  const mounted = readMounts().find(m => m.fstype === FSTYPE && m.source === pool);
  if (mounted) {
    throw new CliError(`${pool} is mounted on ${mounted.mountpoint}`, EXIT.FAILURE, `unmount it first: daxvm umount ${mounted.mountpoint}`);
  }
  mkdirSync(path.dirname(pool), { recursive: true });
  const bar = progressBar('mkfs');
  try {
    const mode = group ? 0o660 : 0o600;
    const r = mkfs(pool, {
      size, force, mode,
      ...(group ? { gid: group.gid } : {}),
      ...(bar.onProgress ? { onProgress: bar.onProgress } : {}),
    });
    return { pool, size, mode: octal(mode), ...r };
  } catch (err) {
    if (err instanceof PoolError) throw poolFailure(err, EXIT.FAILURE);
    if (err instanceof MediaPoolError) throw new CliError(err.message, EXIT.FAILURE);
    throw err;
  } finally {
    bar.stop();
  }
}

export function cmdMkfs(poolArg: string, opts: MkfsOptions): number {
  const pool = path.resolve(poolArg);
  const size = parseSize(opts.size ?? DEFAULT_POOL_SIZE);
  let group: { gid: number; name: string } | undefined;
  if (opts.group !== undefined) {
    group = resolveGroup(opts.group);
    checkGroupMember(group);
  }
  const r = makePool(pool, size, opts.force ?? false, group);
  if (opts.json) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } else {
    process.stdout.write(
      `Created daxvm pool ${pool}: ${formatBytes(size)}, ${r.blocks} blocks, ` +
      `${r.inodes} inodes, ${r.dataBlocks} data blocks; mode ${r.mode}${group ? ` (group ${group.name})` : ''}.\n` +
      `Mount it with: daxvm mount ${pool} /mnt/nvmm1\n`,
    );
  }
  return EXIT.OK;
}
