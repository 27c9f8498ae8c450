/**
 * The native shim (native-shim/core and native-shim/node, built by node-gyp into
 * build/Release/daxvm_shim.node): found and loaded once, here. Each user
 * declares the functions it calls (media/native.ts, lib/native.ts,
 * bench/native.ts); what they share, the mapping primitives, is typed here.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Opaque handle of one mmap; owns the mapping (see native-shim/node/glue.c). */
export interface MapHandle {
  readonly __daxvmMapHandle: never;
}

export type MadviseAdvice = 'willneed' | 'dontneed' | 'hugepage' | 'sequential' | 'random';

/**
 * What a failed system call throws, shaped like Node's own errors:
 * `code` 'EACCES', `errno` negative (-13, as Node's), `syscall` 'mmap'.
 */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

/** The mapping primitives of the shim (native-shim/node/addon.c), used by the media layer and the library. */
export interface MappingShim {
  /** mmap(MAP_SHARED) of [0, length) of fd; length may exceed 4 GiB; with populate, MAP_POPULATE. */
  map(fd: number, length: number, writable: boolean, populate?: boolean): MapHandle;
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
}

// The same relative path works from src/core (tap runs TS) and dist/core.
const addonPath = fileURLToPath(new URL('../../build/Release/daxvm_shim.node', import.meta.url));
let addon: unknown;

/** The addon, typed as the caller declares it (one instance per process). */
export function loadShim<T>(): T {
  addon ??= createRequire(import.meta.url)(addonPath);
  return addon as T;
}
