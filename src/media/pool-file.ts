/**
 * The pool file itself, before it is mapped: its lock, its mode and owner,
 * the directory entry made durable. Its failures are core's PoolError (no hint:
 * the layers above say what to do).
 */
import fs from 'node:fs';
import { PoolError } from '../core/errors.js';
import { native } from './native.js';
import type { PoolCreateOptions, PoolLock } from './types.js';


/**
 * The pool is the disk: whoever reads it reads every file. open(O_CREAT)
 * leaves an existing file's mode and owner alone (a file made by
 * `truncate -s`, an old pool, a copy), so both are set here, before the old
 * contents are dropped: mode 0600 (or opts.mode), owned by the caller, the
 * group opts.gid when given.
 */
export function makePrivate(poolPath: string, fd: number, opts: PoolCreateOptions): void {
  const mode = opts.mode ?? 0o600;
  const st = fs.fstatSync(fd);
  const euid = process.geteuid?.() ?? st.uid;
  try {
    // Only root can take a file over from another user; anyone may set a group they are in.
    if (st.uid !== euid) fs.fchownSync(fd, euid, opts.gid ?? process.getegid?.() ?? st.gid);
    else if (opts.gid !== undefined && opts.gid !== st.gid) fs.fchownSync(fd, -1, opts.gid);
    fs.fchmodSync(fd, mode);
  } catch (err) {
    throw new PoolError('EPERM', `cannot make ${poolPath} mode ${mode.toString(8).padStart(4, '0')}` +
      ` owned by uid ${euid}${opts.gid !== undefined ? ` group ${opts.gid}` : ''}: ${(err as Error).message}`, { path: poolPath, cause: err });
  }
}

/** flock without waiting: a held lock means another mount or tool has the pool. */
export function takeLock(poolPath: string, fd: number, lock: PoolLock): void {
  if (lock === 'none') return;
  try {
    native.flock(fd, lock);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EWOULDBLOCK') {
      throw new PoolError('ELOCKED', `pool ${poolPath} is in use (mounted?)`, { path: poolPath, cause: err });
    }
    throw err;
  }
}

/** Makes a newly created directory entry durable. */
export function syncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
