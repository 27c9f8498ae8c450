/**
 * The host's space under a sparse pool (see src/media/host.ts): blocks the
 * file system uses are backed by host blocks, and blocks it hands out get
 * theirs before anyone stores into them, so a full host is ENOSPC from the
 * allocator (the file system's own ENOSPC path: all or nothing), never a
 * SIGBUS in the daemon or in a client's mapping. When the host is full,
 * the allocation is tried again among the blocks already backed (freed
 * blocks of a sparse pool keep their host blocks: nothing is punched). A
 * pool allocated on the host at mkfs needs none of this (Pool.sparse is
 * false: no cost).
 */
import type { Pool } from '../media/pool.js';
import { FsError, type StatFs } from './api.js';
import type { BlockAllocator } from './alloc.js';
import type { Bits } from './bitmap.js';
import { PoolError } from '../core/errors.js';
import { BLOCK_SIZE, type Geometry } from '../core/format/pool.js';

const isNoSpace = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOSPC';

/**
 * At a writable open of a sparse pool: back every used block (a pool copied
 * with holes, or left by an older version, may lack them), then have the
 * allocator reserve host blocks for every run it hands out.
 */
export function backOnHost(pool: Pool, used: Bits, g: Geometry, alloc: BlockAllocator): void {
  if (!pool.sparse || pool.readOnly) return;
  try {
    for (let b = used.nextSet(0); b >= 0 && b < g.totalBlocks;) {
      const n = used.setRun(b, g.totalBlocks - b);
      pool.reserveHost(b * BLOCK_SIZE, n * BLOCK_SIZE, true);
      b = used.nextSet(b + n);
    }
  } catch (err) {
    if (!isNoSpace(err)) throw err;
    const h = pool.hostSpace();
    throw new PoolError('ENOSPC', `${pool.path} is sparse and the host has no space for the blocks in use ` +
      `(${h.available} bytes available, ${h.allocated} of the pool's bytes backed)`, { hint: 'free space on the host file system holding the pool, then mount again' });
  }
  alloc.hostUnbacked = () => pool.unbackedRanges().map(([o, n]) => ({ start: o / BLOCK_SIZE, count: Math.ceil(n / BLOCK_SIZE) }));
  alloc.hostReserve = (start, count) => {
    try {
      pool.reserveHost(start * BLOCK_SIZE, count * BLOCK_SIZE);
    } catch (err) {
      if (isNoSpace(err)) throw new FsError('ENOSPC', 'the host file system holding the pool is full');
      throw err;
    }
  };
}

/**
 * statfs of a sparse pool never promises space the host does not have: free
 * space is the smaller of the pool's and what the host can still back (its
 * available bytes plus the pool's free blocks already backed), and the size
 * shrinks by the difference, so used stays what it is.
 */
export function capByHost(pool: Pool, s: StatFs): StatFs {
  if (!pool.sparse) return s;
  const h = pool.hostSpace();
  const usedBytes = (s.blocks - s.bfree) * BLOCK_SIZE;
  const backedFree = Math.max(0, h.allocated - usedBytes);
  const hostFree = Math.floor((h.available + backedFree) / BLOCK_SIZE);
  const bfree = Math.min(s.bfree, hostFree);
  return { ...s, blocks: s.blocks - (s.bfree - bfree), bfree, bavail: Math.min(s.bavail, hostFree) };
}

/** A sparse pool whose host has less than `bytes` left (a statfs; false at once for an allocated pool). */
export function hostLow(pool: Pool, bytes: number): boolean {
  return pool.sparse && !pool.readOnly && pool.hostSpace().available < bytes;
}
