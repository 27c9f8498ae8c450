/** `daxvm info`: geometry, usage, fragmentation and knobs of a pool (mounted or not). */
import { openCore } from './open.js';
import { S_IFMT, S_IFREG } from './api.js';
import type { FsCore } from './core.js';
import { BLOCK_SIZE, FORMAT_VERSION, PoolState } from '../core/format/pool.js';
import { incompatFeatureNames } from '../core/format/superblock.js';

/** How the regular files that hold data are laid out: extents are runs of contiguous blocks. */
export interface FileExtents {
  files: number;
  extents: number;
  /** extents / files (1 when every file is contiguous; 0 without files). */
  avgExtentsPerFile: number;
  maxExtents: number;
  /** Files in more than one extent. */
  fragmentedFiles: number;
}

export interface PoolInfo {
  path: string;
  formatVersion: number;
  size: number;
  blockSize: number;
  blocks: number;
  dataBlocks: number;
  freeBlocks: number;
  inodes: number;
  freeInodes: number;
  journalBlocks: number;
  clean: boolean;
  state: 'clean' | 'mounted or not cleanly unmounted' | 'has errors';
  mountCount: number;
  /**
   * The superblock's incompatible feature flags by name: VOUCHING_JOURNAL while the pool is mounted
   * writable or was not unmounted cleanly (an older daxvm refuses it then).
   */
  incompatFeatures: string[];
  uuid: string;
  knobs: Record<string, number>;
  fragmentation: { freeExtents: number; largestFreeExtentBlocks: number; freeHugeRegions: number };
  fileExtents: FileExtents;
}

/** From the extent counts in the inode records: cost grows with the inodes in use, not the pool. */
export function fileExtents(core: FsCore): FileExtents {
  let files = 0;
  let extents = 0;
  let maxExtents = 0;
  let fragmentedFiles = 0;
  for (const r of core.inodes.extentCounts()) {
    if ((r.mode & S_IFMT) !== S_IFREG || r.extents === 0) continue;
    files++;
    extents += r.extents;
    maxExtents = Math.max(maxExtents, r.extents);
    if (r.extents > 1) fragmentedFiles++;
  }
  return { files, extents, avgExtentsPerFile: files ? Math.round((extents / files) * 1000) / 1000 : 0, maxExtents, fragmentedFiles };
}

export function poolInfo(poolPath: string): PoolInfo {
  // No lock: a mounted pool can be looked at (its picture is as of the last commit).
  const { core } = openCore(poolPath, { readOnly: true, noLock: true });
  try {
    const { sb } = core;
    const g = sb.geometry;
    return {
      path: poolPath,
      formatVersion: sb.version,
      size: g.totalBlocks * BLOCK_SIZE,
      blockSize: BLOCK_SIZE,
      blocks: g.totalBlocks,
      dataBlocks: g.totalBlocks - g.dataStart,
      freeBlocks: core.alloc.freeSoon,
      inodes: g.inodeCount - 1,
      freeInodes: core.inodes.free,
      journalBlocks: g.journalBlocks,
      clean: sb.state === PoolState.Clean,
      state: sb.state === PoolState.Clean ? 'clean' : sb.state === PoolState.Errors ? 'has errors' : 'mounted or not cleanly unmounted',
      mountCount: sb.mountCount,
      incompatFeatures: incompatFeatureNames(sb.incompatFeatures),
      uuid: sb.uuid.toString('hex'),
      knobs: { ...sb.knobs },
      fragmentation: core.alloc.fragmentation(),
      fileExtents: fileExtents(core),
    };
  } finally {
    core.pool.close();
  }
}

export { FORMAT_VERSION };
