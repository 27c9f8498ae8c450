/**
 * fsck's first steps: the superblock (primary, else the backup) and an open
 * that gets past corrupt bitmaps, before the walk of fsck.ts. It reads the
 * superblocks with plain file reads (they may be beyond what the pool can
 * open); a repair writes through Pool.
 */
import fs from 'node:fs';
import { PoolError } from '../core/errors.js';
import { BACKUP_SUPERBLOCK_BLOCK, BLOCK_SIZE, PoolState, type Geometry } from '../core/format/pool.js';
import { decodeSuperblock, encodeSuperblock, type Superblock } from '../core/format/superblock.js';
import { Pool } from '../media/pool.js';
import { openCore, readSuperblock } from './open.js';

export type Report = (kind: string, message: string, fixed: boolean) => void;

/**
 * A bad primary superblock is restored from the backup (with repair): one
 * that fails its checks, lacks the magic, claims more blocks than the file
 * has, or whose geometry differs from the backup's (the geometry never
 * changes after mkfs; the rest of a valid primary is kept then).
 * False: it is bad, the backup is good, and we may not repair.
 */
export function checkSuperblock(poolPath: string, repair: boolean, report: Report): boolean {
  let primary: Superblock | null = null;
  let problem: PoolError | null = null;
  try {
    primary = readSuperblock(poolPath);
  } catch (err) {
    if (!(err instanceof PoolError) || !['ECORRUPT', 'ENOTPOOL', 'ETRUNCATED'].includes(err.code)) throw err;
    problem = err;
  }
  const fd = fs.openSync(poolPath, 'r');
  try {
    const image = Buffer.alloc(BLOCK_SIZE);
    fs.readSync(fd, image, 0, BLOCK_SIZE, BACKUP_SUPERBLOCK_BLOCK * BLOCK_SIZE);
    const decoded = decodeSuperblock(image);
    const backup = decoded.ok && decoded.sb.geometry.totalBlocks * BLOCK_SIZE <= fs.fstatSync(fd).size ? decoded.sb : null;
    let fixed: Superblock;
    let message: string;
    if (primary) {
      if (!decoded.ok) {
        // The primary is good: the backup is rewritten from it at the end of a repair.
        report('superblock', `the backup superblock is corrupt (${decoded.detail}); ${repair ? 'rewritten' : '--repair rewrites it'}`, repair);
        return true;
      }
      const other = decoded.sb;
      const differs = (Object.keys(other.geometry) as Array<keyof Geometry>).find((k) => other.geometry[k] !== primary!.geometry[k]);
      if (!differs) return true;
      // Both check out but disagree: a pool is exactly as large as its geometry says, so trust the one that fits the file.
      const size = fs.fstatSync(fd).size;
      if (!backup || primary.geometry.totalBlocks * BLOCK_SIZE === size || other.geometry.totalBlocks * BLOCK_SIZE !== size) {
        report('superblock', `the backup superblock's ${differs} is ${other.geometry[differs]}, the primary's ${primary.geometry[differs]}; ${repair ? 'the backup was rewritten' : '--repair rewrites the backup'}`, repair);
        return true;
      }
      fixed = { ...primary, geometry: backup.geometry };
      message = `the primary superblock's ${differs} is ${primary.geometry[differs]}, the backup's ${backup.geometry[differs]}`;
    } else {
      if (!backup) {
        // A primary without the magic in front of a backup with it was a pool: say so, not "not a pool".
        const ours = decoded.ok || decoded.problem !== 'not-ours';
        if (problem!.code !== 'ECORRUPT' && !(problem!.code === 'ENOTPOOL' && ours)) throw problem!;
        throw new PoolError('ECORRUPT', `${poolPath}: both superblocks are corrupt (${decoded.ok ? 'the backup claims more blocks than the file has' : decoded.detail})`, { hint: 'the pool cannot be recovered by fsck', path: poolPath });
      }
      fixed = { ...backup, state: PoolState.Mounted }; // force the full check and orphan pass
      message = problem!.message;
    }
    if (repair) {
      // Through the media layer, the only writer of pool bytes (a crash recorder sees it), holding the pool's lock.
      const pool = Pool.open(poolPath);
      try {
        pool.write(0, encodeSuperblock(fixed));
        pool.persist(0, BLOCK_SIZE);
      } finally {
        pool.close();
      }
    }
    report('superblock', `${message}; the backup superblock is good${repair ? ' and was copied over it' : ' (--repair restores it)'}`, repair);
    return repair;
  } finally {
    fs.closeSync(fd);
  }
}

/** Open even with corrupt bitmaps (they are rebuilt from the walk). */
export function openTolerant(poolPath: string, repair: boolean, report: Report): ReturnType<typeof openCore> {
  try {
    return openCore(poolPath, { readOnly: !repair, anyRoot: true });
  } catch (err) {
    if (!(err instanceof PoolError) || err.code !== 'ECORRUPT' || !/bitmap/.test(err.message)) throw err;
    report('bitmap', err.message, repair);
    return openCore(poolPath, { readOnly: !repair, ignoreBitmaps: true, anyRoot: true });
  }
}
