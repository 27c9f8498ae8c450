/**
 * The host's space under the pool. A store into a hole of a mapped file
 * needs a host block; on a full host file system the kernel answers with
 * SIGBUS, which kills the process (no handler in JavaScript can help). So
 * pools are allocated on the host at mkfs (`fallocate`), and a pool left
 * sparse (`mkfs --sparse`, or a copy that lost its blocks) gets its host
 * blocks from the file system (in 2 MiB chunks: see Pool.reserveHost)
 * before anything is stored into them, where ENOSPC is an error code, not a
 * signal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { native } from './native.js';

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/**
 * A sparse pool gets host blocks in aligned chunks of this size: the largest
 * page-cache folio on x86-64 (PMD order), so no folio a store reaches holds
 * a hole. (ext4 has large folios since 6.16: reserving only the 4 KiB blocks
 * stored into still let a store SIGBUS on a full host, the folio around it
 * needing host blocks for its holes.)
 */
export const HOST_CHUNK = 2 * 2 ** 20;

/** Preallocation goes in steps of this size, for a progress bar (tmpfs zeroes every page: ~0.25 s/GiB). */
const ALLOCATE_STEP = 64 * 2 ** 20;

const notSupported = (err: unknown): boolean =>
  ['EOPNOTSUPP', 'ENOTSUP', 'ENOSYS'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * Allocate [offset, offset+length) of fd on the host, keeping the size.
 * Where the file system has no fallocate, zeros are written into the holes
 * only (existing bytes are kept). Throws ENOSPC as the file system says it.
 */
export function allocateHost(fd: number, offset: number, length: number,
  onProgress?: (done: number, total: number) => void): void {
  for (let at = offset; at < offset + length;) {
    const n = Math.min(ALLOCATE_STEP, offset + length - at);
    try {
      native.fallocate(fd, FALLOC_FL_KEEP_SIZE, at, n);
    } catch (err) {
      if (!notSupported(err)) throw err;
      writeZerosOverHoles(fd, at, n);
    }
    at += n;
    onProgress?.(at - offset, length);
  }
}

/** Without fallocate: rewrite each all-zero 1 MiB piece (a hole reads as zeros), so it is backed. */
function writeZerosOverHoles(fd: number, offset: number, length: number): void {
  const buf = Buffer.alloc(2 ** 20);
  for (let at = offset; at < offset + length; at += buf.length) {
    const n = Math.min(buf.length, offset + length - at);
    const got = fs.readSync(fd, buf, 0, n, at);
    const piece = buf.subarray(0, n);
    if (got < n) piece.fill(0, got);
    if (piece.every(b => b === 0)) fs.writeSync(fd, piece, 0, n, at);
  }
}

/** Bytes of the file backed by host blocks (st_blocks). */
export function allocatedBytes(fd: number): number {
  return fs.fstatSync(fd).blocks * 512;
}

/** Space the host file system holding `file` still gives an unprivileged writer, and its size. */
export function hostAvailable(file: string): { available: number; size: number } {
  const s = fs.statfsSync(path.dirname(file));
  return { available: s.bavail * s.bsize, size: s.blocks * s.bsize };
}

/** Why `needed` bytes for `file` could not be had from the host, with the figures. */
export function hostShortfall(file: string, needed: number): string {
  const mib = (n: number): string => (n / 2 ** 20).toFixed(1);
  return `no space for it on the host: ${mib(needed)} MiB needed, ${mib(hostAvailable(file).available)} MiB available`;
}

/**
 * How the pool's free blocks are zeroed without giving host blocks back:
 * FALLOC_FL_ZERO_RANGE where the host has it (ext4, xfs: extents flip to
 * unwritten, no data written), else zeros stored through the mapping (tmpfs
 * has no ZERO_RANGE; storing is cheaper there than punching). Measured on
 * this VM, per GiB: tmpfs punch 0.64 s, store 0.30 s; ext4 punch 0.08 s,
 * ZERO_RANGE 0.07 s, store 1.9 s (plus writeback).
 */
export type ZeroMethod = 'zero-range' | 'store';

/** Try ZERO_RANGE: 'unsupported' by this host file system, or 'nospace' this time. */
export function zeroRangeOnHost(fd: number, offset: number, length: number): 'ok' | 'unsupported' | 'nospace' {
  try {
    native.fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
    return 'ok';
  } catch (err) {
    if (notSupported(err)) return 'unsupported';
    // ext4 may need a metadata block to split an extent; storing zeros needs none.
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return 'nospace';
    throw err;
  }
}

/**
 * [offset, length] of the host's unwritten extents in a range (allocated by
 * fallocate, never written: they read as zeros), or undefined where the host
 * cannot tell. The first write that reaches such a block makes the host
 * convert the extent, and that conversion is metadata the host writes (and,
 * on a journaled ext4, commits) inside whichever fdatasync writes the block
 * back: measured on ext4, one more serial metadata write per fdatasync of a
 * fresh block, and with a journal a whole commit (two device flushes).
 */
export function unwrittenOnHost(fd: number, offset: number, length: number): Array<[number, number]> | undefined {
  try {
    const flat = native.unwrittenExtents(fd, offset, length);
    const out: Array<[number, number]> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
    return out;
  } catch (err) {
    if (notSupported(err) || (err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

/** mkfs: the whole file allocated on the host; on failure (ENOSPC...) the file is left empty. */
export function preallocate(fd: number, size: number, onProgress?: (done: number, total: number) => void): void {
  try {
    allocateHost(fd, 0, size, onProgress);
  } catch (err) {
    fs.ftruncateSync(fd, 0);
    throw err;
  }
}

/**
 * The host's blocks under one open pool. `sparse` (st_blocks short of the
 * size at open): stores need reserve() first, and nothing is ever punched,
 * since a hole beside a block in use could share a large folio with it.
 * Chunks reserved since open are remembered; chunks holding blocks in use
 * are reserved at open by the file system (fs/host-space.ts), so a chunk
 * not known backed holds nothing in use.
 */
export class HostBacking {
  private readonly backed: Uint8Array | undefined;
  private zeroWith: ZeroMethod | undefined;

  constructor(private readonly path: string, private readonly fd: number, private readonly size: number,
    readonly sparse: boolean, writable: boolean) {
    this.backed = sparse && writable ? new Uint8Array(Math.ceil(size / HOST_CHUNK)) : undefined;
  }

  get zeroMethod(): ZeroMethod | undefined {
    return this.zeroWith;
  }

  /**
   * Host blocks for the chunks around [offset, offset+length) (a sparse
   * pool's; else nothing to do). On failure, what the fallocate took is
   * given back only with `giveBack`: chunks not known backed hold nothing in
   * use once the file system has reserved its blocks in use, not before (a
   * punch at open destroyed the superblock of a pool the host could not back).
   */
  reserve(offset: number, length: number, giveBack = true): void {
    const backed = this.backed;
    if (!backed || length === 0) return;
    const last = Math.floor((offset + length - 1) / HOST_CHUNK);
    for (let c = Math.floor(offset / HOST_CHUNK); c <= last; c++) {
      if (backed[c]) continue;
      let e = c + 1;
      while (e <= last && !backed[e]) e++;
      const from = c * HOST_CHUNK;
      const len = Math.min(e * HOST_CHUNK, this.size) - from;
      try {
        allocateHost(this.fd, from, len);
      } catch (err) {
        // Give back what a failed fallocate took (ext4 keeps it; tmpfs undoes its own), where no block is in use.
        if (giveBack) try { native.fallocate(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, from, len); } catch { /* keep the first error */ }
        throw err;
      }
      backed.fill(1, c, e);
      c = e;
    }
  }

  /** [offset, length] of the chunks not known backed (a sparse pool's). */
  unbacked(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    const backed = this.backed;
    if (!backed) return out;
    for (let c = 0; c < backed.length; c++) {
      if (backed[c]) continue;
      let e = c + 1;
      while (e < backed.length && !backed[e]) e++;
      out.push([c * HOST_CHUNK, Math.min(e * HOST_CHUNK, this.size) - c * HOST_CHUNK]);
      c = e;
    }
    return out;
  }

  /** Zero a range keeping its host blocks: ZERO_RANGE, else `store` (zeros through the mapping). */
  zero(offset: number, length: number, store: () => void): void {
    this.reserve(offset, length);
    const r = this.zeroWith === 'store' ? 'unsupported' : zeroRangeOnHost(this.fd, offset, length);
    if (r === 'ok') {
      this.zeroWith = 'zero-range';
      return;
    }
    if (r === 'unsupported') this.zeroWith = 'store';
    store();
  }

  /** The host's unwritten extents in a range (undefined: the host cannot tell; asked once). */
  unwritten(offset: number, length: number): Array<[number, number]> | undefined {
    if (this.noFiemap) return undefined;
    const r = unwrittenOnHost(this.fd, offset, length);
    if (!r) this.noFiemap = true;
    return r;
  }

  private noFiemap = false;

  space(): { sparse: boolean; allocated: number; available: number } {
    return { sparse: this.sparse, allocated: allocatedBytes(this.fd), available: hostAvailable(this.path).available };
  }
}
