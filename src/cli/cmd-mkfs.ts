/**
 * daxvm mkfs POOL [--size 4G] [--force] [--group NAME] [--sparse] [--json]
 * (without --size, --force keeps an existing file's size, as mkfs.ext4 does)
 *
 * The pool is allocated on the host (fallocate; a progress bar on a
 * terminal), so the pool can never meet a full host disk later; a size the
 * host cannot hold is refused with the figures, unless --sparse.
 */
import { mkdirSync, statSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { mkfs, PoolError } from '../fs/index.js';
import { MIN_POOL_BYTES } from '../core/format/pool.js';
import { readMounts, FSTYPE } from '../core/mountinfo.js';
import { CliError, EXIT, poolFailure } from '../core/errors.js';
import { formatBytes, parseSize } from '../core/output.js';
import { DEFAULT_POOL_SIZE } from './paths.js';
import { checkGroupMember, octal, resolveGroup } from './pool-mode.js';
import { pasteable } from './invocation.js';
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

/**
 * The directory that will hold the pool: it must exist (mkfs never makes
 * directories, as mkfs.ext4 makes no device nodes), unless `makeParents`
 * (the default pool of `daxvm mount`, under the user's data directory).
 */
export function poolDirectory(pool: string, makeParents: boolean): void {
  const dir = path.dirname(pool);
  if (makeParents) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new CliError(`cannot create ${dir} for the default pool: ${(err as Error).message.split(',')[0]}`,
        EXIT.FAILURE, 'give a pool file where you can write: daxvm mount POOL MOUNTPOINT (or set XDG_DATA_HOME or HOME)');
    }
    return;
  }
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(code === 'ENOENT' ? `directory ${dir} does not exist` : `directory ${dir}: ${code ?? (err as Error).message}`,
      EXIT.FAILURE, code === 'ENOENT' ? `create it first (mkdir -p ${dir}), or give another path` : undefined);
  }
  if (!st.isDirectory()) throw new CliError(`${dir} is not a directory`, EXIT.FAILURE);
}

/** Create a pool (also used by `daxvm mount` for the default pool). Throws CliError. */
export function makePool(pool: string, size: number, force: boolean, group?: { gid: number; name: string }, sparse = false, makeParents = false): MkfsResult {
  let existing;
  try { existing = statSync(pool); } catch { /* a new file */ }
  if (existing?.isDirectory()) {
    throw new CliError(`${pool} is a directory`, EXIT.FAILURE, 'give the path of a pool file to create, e.g. ' + path.join(pool, 'pool.daxvm'));
  }
  if (existing && !force) {
    throw new CliError(`${pool} already exists`, EXIT.FAILURE, 'add --force to overwrite it (everything in it is lost)');
  }
  if (existing && !existing.isFile()) {
    throw new CliError(`${pool} is not a regular file`, EXIT.FAILURE, 'a pool is a regular file on the host');
  }
  const mounted = readMounts().find(m => m.fstype === FSTYPE && m.source === pool);
  if (mounted) {
    throw new CliError(`${pool} is mounted on ${mounted.mountpoint}`, EXIT.FAILURE, `unmount it first: daxvm umount ${mounted.mountpoint}`);
  }
  poolDirectory(pool, makeParents);
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
    if (err instanceof PoolError) {
      // The media layer's refusals carry no hint: the host's space is the one we can name.
      const hint = err.hint ?? (err.code === 'ENOSPC' ? 'free space on the host, or use a smaller --size' : undefined);
      throw poolFailure({ message: err.message, hint }, EXIT.FAILURE);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) {
      // The host said no (EACCES, EROFS, ...): its words, not a stack.
      throw new CliError(`cannot create ${pool}: ${(err as Error).message}`, EXIT.FAILURE);
    }
    throw err;
  } finally {
    allocBar.stop();
    bar.stop();
  }
}

/**
 * The size to make: --size, else (as mkfs.ext4 on a file) the size of the
 * existing file being overwritten, else the default. An existing file too
 * small for a pool is refused rather than grown behind the user's back.
 */
function sizeToMake(pool: string, opts: MkfsOptions): number {
  if (opts.size !== undefined) return parseSize(opts.size);
  let existing = 0;
  try { existing = statSync(pool).isFile() ? statSync(pool).size : 0; } catch { /* a new file */ }
  if (existing === 0 || !opts.force) return parseSize(DEFAULT_POOL_SIZE);
  if (existing < MIN_POOL_BYTES) {
    throw new CliError(`${pool} is ${formatBytes(existing)}, smaller than a pool's ${formatBytes(MIN_POOL_BYTES)}`, EXIT.USAGE,
      `give the size to make it: --size ${DEFAULT_POOL_SIZE}`);
  }
  return existing;
}

export function cmdMkfs(poolArg: string, opts: MkfsOptions): number {
  const pool = path.resolve(poolArg);
  const size = sizeToMake(pool, opts);
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
      pasteable(`Mount it with: daxvm mount ${pool} /mnt/nvmm1\n`),
    );
  }
  return EXIT.OK;
}
