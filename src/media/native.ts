/**
 * The native shim (native-shim/*.c, built by node-gyp into
 * build/Release/daxvm_shim.node): loaded once, typed here, nothing else.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Opaque handle of one mmap; owns the mapping (see native-shim/shim.c). */
export interface MapHandle {
  readonly __daxvmMapHandle: never;
}

export type MadviseAdvice = 'willneed' | 'dontneed' | 'hugepage' | 'sequential' | 'random';
export type FlockMode = 'exclusive' | 'shared' | 'unlock';

/**
 * What a failed system call throws, shaped like Node's own errors:
 * `code` 'EACCES', `errno` negative (-13, as Node's), `syscall` 'mmap'.
 */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export interface NativeShim {
  /** mmap(MAP_SHARED) of [0, length) of fd; length may exceed 4 GiB. */
  map(fd: number, length: number, writable: boolean): MapHandle;
  /**
   * An external ArrayBuffer over [offset, offset+length) of the mapping, no
   * copy; length must fit a Buffer. Detached (byteLength 0) by unmap().
   */
  view(handle: MapHandle, offset: number, length: number): ArrayBuffer;
  /** msync(MS_SYNC) of the pages covering the range. */
  msync(handle: MapHandle, offset: number, length: number): void;
  /** madvise over the pages covering the range. */
  madvise(handle: MapHandle, offset: number, length: number, advice: MadviseAdvice): void;
  /** Detaches every view, then munmap; idempotent. */
  unmap(handle: MapHandle): void;
  /** flock with LOCK_NB; a held lock throws code 'EWOULDBLOCK'. */
  flock(fd: number, mode: FlockMode): void;
  /** fallocate(PUNCH_HOLE | KEEP_SIZE): the range reads as zeros and its host space is freed. */
  punchHole(fd: number, offset: number, length: number): void;
}

// The same relative path works from src/media (tap runs TS) and dist/media.
const addonPath = fileURLToPath(new URL('../../build/Release/daxvm_shim.node', import.meta.url));

export const native: NativeShim = createRequire(import.meta.url)(addonPath) as NativeShim;
