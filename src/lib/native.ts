/** The native shim's functions the library calls (native-shim/node/lib.c, pool.c; the shim is loaded by core/native.ts). */
import { loadShim, type MapHandle, type MappingShim } from '../core/native.js';

export type { MapHandle } from '../core/native.js';

/** Opaque handle of a lease in a pool's lease table (see native-shim/core/lease.h). */
export interface LeaseHandle {
  readonly __daxvmLeaseHandle: never;
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

export interface LibShim extends MappingShim {
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
  stitch(pool: MapHandle, runs: Float64Array, writable: boolean, priv: boolean, ephemeral: boolean, track: boolean, lease: LeaseHandle | null): Span;
  /**
   * Lease the pool bytes of runs ([offset, length, ...] pairs) in the pool's
   * shared lease table for file ino (generation gen): the daemon reuses none
   * of those blocks until the lease is dropped (dropLease, the span that
   * took it over in stitch, or the handle's collection). Throws ENOENT (no
   * table), EACCES, EPERM, EPROTO, EXDEV (unusable table), ENOSPC (full),
   * EAGAIN (writable only: blocks the daemon's newest commit vouches for by
   * checksum; an fsync of the file through the mount confirms it).
   */
  lease(pool: MapHandle, runs: Float64Array, ino: number, gen: number, writable: boolean): LeaseHandle;
  dropLease(lease: LeaseHandle): void;
  /**
   * Is the file's flock held through another open file (a daemon serving
   * the pool holds it until it has closed the pool)? A non-blocking
   * exclusive flock, let go at once when granted.
   */
  lockHeld(fd: number): boolean;
  /** This process's owner word in lease tables (pid << 32 | start time's low 32 bits). */
  leaseOwner(): bigint;
  /** Pages written in the range since the last call, write-protected again; with sync, msync'ed each run. */
  syncWritten(handle: MapHandle, offset: number, length: number, sync: boolean): number;
  /** Pages written in the range since the last syncWritten (nothing re-armed). */
  countWritten(handle: MapHandle, offset: number, length: number): number;
  /** Queue a span for batched unmapping (views detached now); returns the spans dropped now (0: queued). */
  zombie(handle: MapHandle, maxPages: number): number;
  /** Drop every queued span; returns how many. */
  flushZombies(): number;
  stats(): LibStats;
  address(handle: MapHandle): number;

  // the shared namespace (native-shim/core/ns.h): resolve with no request to the daemon
  /**
   * Resolve a path (raw bytes) for reading (want 4) or reading and writing (6):
   * 0 and `out` = [mount, ino, generation, seq, mode, uid, gid, flags, size, region generation];
   * a negative errno (the kernel's answer); a positive fallback code (nsReason).
   */
  nsResolve(path: Buffer, want: number, out: Float64Array): number;
  /**
   * The runs of file blocks [first, end): 0 and `out` = [runs, holes, (logical, physical, count)...];
   * -EAGAIN: changed (or read in another region: `region` is the generation nsResolve gave).
   */
  nsRuns(mount: number, region: number, ino: number, seq: number, first: number, end: number, out: Float64Array): number;
  /** Is the file's record still at sequence word seq? */
  nsUnchanged(mount: number, region: number, ino: number, seq: number): boolean;
  nsMountInfo(mount: number): { mountpoint: string; pool: string; mountId: number } | null;
  nsReason(code: number): string;
  /**
   * MAP_DAXVM in one call (native-shim/node/ns_attach.c): resolve `path`
   * for `want`, and when mount `mount` serves it as one run of the pool with
   * no hole, lease the run, check the record again and return an ArrayBuffer over
   * [offset, +length) of the file in the read-only view `ro` (length 0: to the end), as
   * attach makes it (the caller makes the Buffer: cheaper in JavaScript); `out` = [mount, ino, generation, seq, size, length,
   * first file block, pool block, blocks, lease id, 1 when the path was
   * absolute and normal already]. Otherwise a number:
   * NSA's codes (direct.ts), a negative errno (the kernel's answer) or a
   * fallback code (nsReason).
   */
  nsAttach(path: string | Buffer, ro: MapHandle, io: Float64Array): ArrayBuffer | number;
  /**
   * The runs of blocks [first, end) of inode ino (generation gen), read from
   * the pool view's page table without a lock (native-shim/core/table.c)
   * into `out` (OUT's layout); returns how many there are (those past the
   * room in `out` are not stored: ask again with more), or a problem (< 0,
   * see tableProblem).
   */
  readTable(ro: MapHandle, ino: number, gen: number, first: number, end: number, out: Float64Array): number;
  /** What a negative answer of readTable or attach means, in words. */
  tableProblem(code: number): string;
  /**
   * readTable, and when the blocks are one run with no hole: lease it, check
   * the table again, and return a Buffer over [run, +length) of `view`, not
   * counted as external memory, with no finalizer (native-shim/node/attach.c);
   * the lease goes with release(), or when V8 frees the Buffer's ArrayBuffer.
   * out[OUT.LEASE] is then the lease's id, for release.
   * Otherwise a number: ATTACH.SPLIT, ATTACH.HOLES, ATTACH.NO_LEASE (errno in
   * out[OUT.ERRNO]), ATTACH.CHANGING, or a table problem.
   */
  attach(ro: MapHandle, ino: number, gen: number, first: number, end: number, view: MapHandle, length: number, out: Float64Array): Buffer | number;
  /**
   * A Buffer over [offset, +length) of `view` as attach makes it, for a lease
   * taken already: the lease moves from its handle (empty after) into the
   * shim's records; out[OUT.LEASE] is its id, for release.
   */
  adopt(view: MapHandle, offset: number, length: number, lease: LeaseHandle, out: Float64Array): Buffer;
  /** Detach an attached mapping's Buffer (length 0) and drop its lease, in one call; idempotent. */
  release(buffer: Buffer, leaseId: number): void;
  /** An O_PATH descriptor of the file `path` names if it is inode `ino`, else -1 (no request reaches a FUSE file system). */
  pinInode(path: string, ino: number): number;
  /** Closes a descriptor of pinInode (fs.closeSync would warn in a worker thread: its fs did not open it). */
  unpin(fd: number): void;
  /**
   * utimensat({ UTIME_OMIT, UTIME_NOW }): the file's mtime (and ctime) become now. Through `pin` (pinInode's
   * descriptor, wherever the file was renamed) when it is >= 0, else by `path` if it still names inode `ino`;
   * false when neither reaches the file or it failed.
   */
  touchMtime(path: string, ino: number, pin: number): boolean;
}

/** Where readTable and attach put what they found (a Float64Array; runs are (pool block, blocks) pairs from HEAD). */
export const OUT = { SEQ: 0, SIZE: 1, HOLES: 2, PTE: 3, PMD: 4, PUD: 5, RUNS: 6, LEASE: 7, ERRNO: 8, HEAD: 9 } as const;

/** What attach returns instead of a Buffer (besides table problems). */
export const ATTACH = { SPLIT: 1, HOLES: 2, NO_LEASE: -100, CHANGING: -101 } as const;

export const native = loadShim<LibShim>();
