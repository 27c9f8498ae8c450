/**
 * The state of an aged (or about to be aged) mount: fill level from statfs,
 * fragmentation as `daxvm info --json` gives it, read from the pool file.
 * The daemon's picture on the pool is as of its last commit, so the caller
 * commits first (an fsync on the mount).
 */
import { statfsSync } from 'node:fs';
import { poolInfo, type FileExtents, type PoolInfo } from '../../fs/index.js';

export interface Snapshot {
  capacityBytes: number;
  usedBytes: number;
  /** usedBytes / capacityBytes. */
  fill: number;
  /** As `daxvm info --json`; null when the pool could not be read (see infoError). */
  fragmentation: PoolInfo['fragmentation'] | null;
  fileExtents: FileExtents | null;
  infoError?: string;
}

/** capacity and used bytes as df shows them. */
export function statfsUsage(mnt: string): { capacityBytes: number; usedBytes: number } {
  const s = statfsSync(mnt);
  return { capacityBytes: s.blocks * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize };
}

export function snapshot(mnt: string, pool: string): Snapshot {
  const { capacityBytes, usedBytes } = statfsUsage(mnt);
  const fill = Math.round((usedBytes / capacityBytes) * 10000) / 10000;
  try {
    const info = poolInfo(pool);
    return { capacityBytes, usedBytes, fill, fragmentation: info.fragmentation, fileExtents: info.fileExtents };
  } catch (err) {
    // Aging works through the mount; only the report needs the pool file (e.g. not readable by this user).
    return { capacityBytes, usedBytes, fill, fragmentation: null, fileExtents: null, infoError: (err as Error).message };
  }
}
