/** The native shim's functions the media layer calls (the shim is loaded by core/native.ts). */
import { loadShim, type MappingShim } from '../core/native.js';

export type { MapHandle } from '../core/native.js';

export type FlockMode = 'exclusive' | 'shared' | 'unlock';

export interface MediaShim extends MappingShim {
  /** flock with LOCK_NB; a held lock throws code 'EWOULDBLOCK'. */
  flock(fd: number, mode: FlockMode): void;
  /** fallocate(PUNCH_HOLE | KEEP_SIZE): the range reads as zeros and its host space is freed. */
  punchHole(fd: number, offset: number, length: number): void;
  /**
   * fallocate(2) as called (Node has none): `mode` is FALLOC_FL_* bits (0:
   * allocate and extend). A failure throws its errno: EOPNOTSUPP where the
   * file system has no fallocate, ENOSPC, EFBIG, EINVAL...
   */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /**
   * The host's unwritten extents (FIEMAP) in [offset, offset+length), clipped
   * to it: [start, length, start, length...]. EOPNOTSUPP where the file
   * system cannot tell (tmpfs).
   */
  unwrittenExtents(fd: number, offset: number, length: number): number[];
}

export const native = loadShim<MediaShim>();
