/**
 * The native shim (native-shim/core and native-shim/node, built by node-gyp into
 * build/Release/daxvm_shim.node): loaded once, typed here, nothing else.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Opaque handle of one mmap; owns the mapping (see native-shim/node/glue.c). */
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

/** What the kernel offers the client library (probed once per process). */
export interface NativeFeatures {
  /** A userfaultfd could be made (syscall or /dev/userfaultfd). */
  userfaultfd: boolean;
  userfaultfdError: string | null;
  /** The kernel's UFFDIO_API feature bits. */
  uffdFeatures: number;
  /** UFFD_FEATURE_WP_ASYNC (6.7): write-protect faults resolved by the kernel itself. */
  wpAsync: boolean;
  /** UFFD_FEATURE_WP_UNPOPULATED (6.4). */
  wpUnpopulated: boolean;
  /** The PAGEMAP_SCAN ioctl (6.7). */
  pagemapScan: boolean;
  pagemapScanError: string | null;
  /** The library tracks dirty pages (all of the above, and DAXVM_NO_TRACKING unset). */
  tracking: boolean;
}

/** The process's views of a pool file: read-only, read-write tracked, read-write untracked (nosync). */
export type PoolViewKind = 'ro' | 'rw' | 'rw-untracked';

export interface PoolView {
  /** Never unmapped: the process keeps its pool views for its life. */
  handle: MapHandle;
  size: number;
  /** 'rw' only: registered with the process's userfaultfd and armed. */
  tracked: boolean;
  address: number;
}

export interface Span {
  handle: MapHandle;
  /** Carved from the ephemeral heap (else an address range of its own). */
  heap: boolean;
  tracked: boolean;
  address: number;
}

export interface LibStats {
  heapSize: number;
  heapUsed: number;
  heapTop: number;
  zombies: number;
  zombiePages: number;
}

export interface NativeShim {
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

  // ---- for the client library (native-shim/node/lib.c) ----
  /** getxattr(2) by path, fgetxattr(2) for an fd; ENODATA when absent. */
  getxattr(pathOrFd: string | number, name: string): Buffer;
  /**
   * statx of an open file with AT_STATX_DONT_SYNC (no round trip to a FUSE
   * daemon): its mount's id (unique ids, Linux 6.8, are never reused), device
   * and mode.
   */
  quickStat(fd: number): { mountId: number; unique: boolean; devMajor: number; devMinor: number; mode: number };
  /** Detach an ArrayBuffer (it reads as length 0 after). */
  detach(ab: ArrayBuffer): void;
  /** Detach a buffer another addon mapped and put a PROT_NONE placeholder over its pages (mmap-io). */
  retire(ab: ArrayBuffer): void;
  features(): NativeFeatures;
  /** The process's view of a pool, mapped on first use (2 MiB or 1 GiB aligned), shared by all workers. */
  poolView(path: string, kind: PoolViewKind): PoolView;
  /**
   * One span of MAP_FIXED maps of pool runs, `runs` = [poolOffset, length, ...]
   * (whole pages); shared or private (copy-on-write), from the ephemeral heap
   * when asked, registered and armed for dirty tracking when asked.
   */
  stitch(pool: MapHandle, runs: Float64Array, writable: boolean, priv: boolean, ephemeral: boolean, track: boolean): Span;
  /** Pages written in the range since the last call, write-protected again; with sync, msync'ed each run. */
  syncWritten(handle: MapHandle, offset: number, length: number, sync: boolean): number;
  /** Pages written in the range since the last syncWritten (nothing re-armed). */
  countWritten(handle: MapHandle, offset: number, length: number): number;
  /** Queue a span for batched unmapping (views detached now); returns the spans dropped now (0: queued). */
  zombie(handle: MapHandle, leaseFd: number, maxPages: number): number;
  /** Drop every queued span; returns how many. */
  flushZombies(): number;
  stats(): LibStats;
  address(handle: MapHandle): number;

  // ---- for daxvm bench (native-shim/node/bench.c) ----
  /**
   * Sum of the bytes as little-endian uint64 words, wrapping at 2^64 (a last
   * partial word zero-padded); of the first `length` bytes when given.
   */
  sum64(data: ArrayBufferView | ArrayBuffer, length?: number): bigint;
}

// The same relative path works from src/media (tap runs TS) and dist/media.
const addonPath = fileURLToPath(new URL('../../build/Release/daxvm_shim.node', import.meta.url));

export const native: NativeShim = createRequire(import.meta.url)(addonPath) as NativeShim;
