/** `daxvm info`: geometry, usage, fragmentation and knobs of a pool (mounted or not). */
import { openCore } from './open.js';
import { BLOCK_SIZE, FORMAT_VERSION, PoolState } from './layout.js';

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
  uuid: string;
  knobs: Record<string, number>;
  fragmentation: { freeExtents: number; largestFreeExtentBlocks: number; freeHugeRegions: number };
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
      uuid: sb.uuid.toString('hex'),
      knobs: { ...sb.knobs },
      fragmentation: core.alloc.fragmentation(),
    };
  } finally {
    core.pool.close();
  }
}

export { FORMAT_VERSION };
