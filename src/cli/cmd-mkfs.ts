/** daxvm mkfs POOL [--size 4G] [--force] [--json] */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { mkfs, PoolError } from '../fs/index.js';
import { readMounts, FSTYPE } from '../fuse/mountinfo.js';
import { CliError, EXIT, poolFailure } from './errors.js';
import { formatBytes, parseSize } from './format.js';
import { DEFAULT_POOL_SIZE } from './paths.js';
import { progressBar } from './progress.js';

export interface MkfsOptions {
  size?: string;
  force?: boolean;
  json?: boolean;
}

export interface MkfsResult {
  pool: string;
  size: number;
  blocks: number;
  inodes: number;
  dataBlocks: number;
}

/** Create a pool (also used by `daxvm mount` for the default pool). Throws CliError. */
export function makePool(pool: string, size: number, force: boolean): MkfsResult {
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
    const r = mkfs(pool, { size, force, ...(bar.onProgress ? { onProgress: bar.onProgress } : {}) });
    return { pool, size, ...r };
  } catch (err) {
    if (err instanceof PoolError) throw poolFailure(err, EXIT.FAILURE);
    throw err;
  } finally {
    bar.stop();
  }
}

export function cmdMkfs(poolArg: string, opts: MkfsOptions): number {
  const pool = path.resolve(poolArg);
  const size = parseSize(opts.size ?? DEFAULT_POOL_SIZE);
  const r = makePool(pool, size, opts.force ?? false);
  if (opts.json) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } else {
    process.stdout.write(
      `Created daxvm pool ${pool}: ${formatBytes(size)}, ${r.blocks} blocks, ` +
      `${r.inodes} inodes, ${r.dataBlocks} data blocks.\n` +
      `Mount it with: daxvm mount ${pool} /mnt/nvmm1\n`,
    );
  }
  return EXIT.OK;
}
