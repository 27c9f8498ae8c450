/**
 * daxvm mkfs POOL [--size 4G] [--force] [--group NAME] [--sparse] [--json]
 *
 * The pool is allocated on the host (fallocate; a progress bar on a
 * terminal), so the pool can never meet a full host disk later; a size the
 * host cannot hold is refused with the figures, unless --sparse.
 */
import { existsSync, mkdirSync, statSync, statfsSync } from 'node:fs';
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
  /** Do not allocate the pool on the host. */
  sparse?: boolean;
  json?: boolean;
}

export interface MkfsResult {
  pool: string;
  size: number;
  /** The pool file's permission bits, e.g. "0600". */
  mode: string;
  /** Left sparse on the host (else allocated). */
  sparse: boolean;
  blocks: number;
  inodes: number;
  dataBlocks: number;
}

/** Create a pool (also used by `daxvm mount` for the default pool). Throws CliError. */
/**
 * Refuse a size the host cannot hold (unless sparse: then a note), with the
 * figures. An existing file's blocks count as free: --force drops them first.
 */
function checkHostSpace(pool: string, size: number, sparse: boolean): void {
  const dir = path.dirname(pool);
  const s = statfsSync(dir);
  let reclaim = 0;
  try { reclaim = statSync(pool).blocks * 512; } catch { /* a new file */ }
  const available = s.bavail * s.bsize + reclaim;
  if (size <= available) return;
  const figures = `size ${formatBytes(size)} asked, ${formatBytes(available)} available on the host file system holding ${dir}`;
  if (sparse) {
    process.stderr.write(`daxvm: note: ${figures}; the sparse pool takes host space as files need it, and writes get ENOSPC once the host is full\n`);
    return;
  }
  throw new CliError(`not enough space for the pool: ${figures}`, EXIT.FAILURE,
    `use a smaller --size (at most ${formatBytes(Math.floor(available / 4096) * 4096)}), free space there, ` +
    'or add --sparse to allocate host blocks only as files need them (writes get ENOSPC when the host fills up)');
}

export function makePool(pool: string, size: number, force: boolean, group?: { gid: number; name: string }, sparse = false): MkfsResult {
  if (existsSync(pool) && !force) {
    throw new CliError(`${pool} already exists`, EXIT.FAILURE, 'add --force to overwrite it (everything in it is lost)');
  }
  const mounted = readMounts().find(m => m.fstype === FSTYPE && m.source === pool);
  if (mounted) {
    throw new CliError(`${pool} is mounted on ${mounted.mountpoint}`, EXIT.FAILURE, `unmount it first: daxvm umount ${mounted.mountpoint}`);
  }
  mkdirSync(path.dirname(pool), { recursive: true });
  checkHostSpace(pool, size, sparse);
  const allocBar = progressBar('allocating on the host');
  const bar = progressBar('mkfs');
  const onProgress = bar.onProgress;
  try {
    const mode = group ? 0o660 : 0o600;
    const r = mkfs(pool, {
      size, force, mode, sparse,
      ...(group ? { gid: group.gid } : {}),
      ...(allocBar.onProgress ? { onAllocate: allocBar.onProgress } : {}),
      ...(onProgress ? { onProgress: (done: number, total: number) => { allocBar.stop(); onProgress(done, total); } } : {}),
    });
    return { pool, size, mode: octal(mode), sparse, ...r };
  } catch (err) {
    if (err instanceof PoolError) throw poolFailure(err, EXIT.FAILURE);
    if (err instanceof MediaPoolError) {
      throw new CliError(err.message, EXIT.FAILURE, err.code === 'ENOSPC' ? 'free space on the host, or use a smaller --size' : undefined);
    }
    throw err;
  } finally {
    allocBar.stop();
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
  const r = makePool(pool, size, opts.force ?? false, group, opts.sparse ?? false);
  if (opts.json) {
    process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } else {
    process.stdout.write(
      `Created daxvm pool ${pool}: ${formatBytes(size)}, ${r.blocks} blocks, ` +
      `${r.inodes} inodes, ${r.dataBlocks} data blocks; ${r.sparse ? 'sparse on the host' : 'allocated on the host'}; ` +
      `mode ${r.mode}${group ? ` (group ${group.name})` : ''}.\n` +
      `Mount it with: daxvm mount ${pool} /mnt/nvmm1\n`,
    );
  }
  return EXIT.OK;
}
