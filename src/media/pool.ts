/**
 * The pool: one host file mapped MAP_SHARED as a whole, standing in for a PMem
 * device. This class is the only code that stores bytes into it, so every
 * store and barrier can be observed by a MediaRecorder (crash-state testing).
 *
 * The file is mapped once; JavaScript reads it through Buffers over 1 GiB
 * windows of that one mapping (a Buffer holds at most 4 GiB, pools may be
 * bigger), made lazily and cached. An access that crosses a window boundary
 * is split into one piece per window.
 *
 * Stores go through pwrite(2), not the mapping: the host's page cache holds
 * the pool in folios of up to 2 MiB (ext4 has large folios since 6.16, and
 * the mappings ask for huge pages), and a store through a mapping dirties
 * its whole folio, so the next barrier wrote 2 MiB back for every 4 KiB
 * block stored (2.8 MiB per fdatasync of a 4 KiB append + fsync). A
 * pwrite dirties only the 4 KiB blocks it covers (19 KiB per fdatasync).
 * Every mapping of the pool sees the bytes at once (one page cache).
 *
 * Read-only opens (fsck, info, `-o ro`) map nothing: they read with pread(2),
 * so a pool with holes on a full host (a read fault on a tmpfs hole
 * allocates a page) can never SIGBUS them. A writable pool is either
 * allocated on the host (mkfs's default) or sparse, which it finds out at
 * open; a sparse pool's host blocks are reserved before use (reserveHost),
 * see host.ts.
 *
 * Over 400 lines on purpose: one class, because being the only writer is
 * the point (every store, barrier and window goes past the same recorder and
 * open/writable checks); file and host work already live in pool-file.ts
 * and host.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import createDebug from 'debug';
import { HostBacking, preallocate, type ZeroMethod } from './host.js';
import { native, type MapHandle } from './native.js';
import { PoolError } from '../core/errors.js';
import { makePrivate, syncDirectory, takeLock } from './pool-file.js';
import type { MediaRecorder, PoolCreateOptions, PoolLock, PoolOpenOptions } from './types.js';

const log = createDebug('daxvm:media');

/** Pool sizes are whole 4 KiB blocks. */
export const POOL_SIZE_ALIGN = 4096;

/** Size of the Buffers handed out over the mapping (a power of two). */
export const WINDOW_SIZE = 2 ** 30;

/** copyWithin stages, and fill stores, through a buffer of at most this size. */
const COPY_CHUNK = 1 << 20;

/** A shared buffer of zeros for storeFill (never written: pwrite only reads it). */
let zeroBuf: Buffer | undefined;
const zeros = (n: number): Buffer => {
  if (!zeroBuf || zeroBuf.length < n) zeroBuf = Buffer.alloc(Math.max(n, 64 * 1024));
  return zeroBuf;
};

/** Given to every Pool opened from now on (Pool.setDefaultRecorder). */
let defaultRecorder: MediaRecorder | null = null;


export class Pool {
  readonly path: string;
  readonly size: number;
  readonly readOnly: boolean;
  /** The host's blocks under the pool: sparse or not, reservations, zeroing (host.ts). */
  private readonly host: HostBacking;
  private fd: number;
  /** null: read-only, read with pread (or closed). */
  private handle: MapHandle | null;
  private closed = false;
  private readonly lock: PoolLock;
  private readonly windows: (Buffer | undefined)[];
  private recorder: MediaRecorder | null = defaultRecorder;
  private storeGuard: ((offset: number, length: number) => void) | null = null;

  private constructor(poolPath: string, fd: number, size: number, handle: MapHandle | null,
    readOnly: boolean, lock: PoolLock, sparse: boolean) {
    this.path = poolPath;
    this.fd = fd;
    this.size = size;
    this.handle = handle;
    this.readOnly = readOnly;
    this.host = new HostBacking(poolPath, fd, size, sparse, !readOnly);
    this.lock = lock;
    this.windows = new Array<Buffer | undefined>(Math.ceil(size / WINDOW_SIZE));
  }

  /**
   * Creates a pool file of sizeBytes, allocated on the host unless
   * opts.sparse, and opens it writable with an exclusive lock. An existing
   * file is refused unless opts.force; even then a pool that is in use
   * (locked) is never truncated. A host without the space: ENOSPC (the file
   * is left empty).
   */
  static create(poolPath: string, sizeBytes: number, opts: PoolCreateOptions = {}): Pool {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % POOL_SIZE_ALIGN !== 0) {
      throw new PoolError('EINVAL',
        `pool size ${sizeBytes} must be a positive multiple of ${POOL_SIZE_ALIGN} bytes`, { path: poolPath });
    }
    const { O_RDWR, O_CREAT, O_EXCL } = fs.constants;
    let fd: number;
    try {
      // No O_TRUNC even with force: truncate only once we hold the lock.
      fd = fs.openSync(poolPath, O_RDWR | O_CREAT | (opts.force ? 0 : O_EXCL), opts.mode ?? 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new PoolError('EEXIST', `pool ${poolPath} already exists (use --force to overwrite it)`, { path: poolPath, cause: err });
      }
      throw err;
    }
    try {
      takeLock(poolPath, fd, 'exclusive');
      makePrivate(poolPath, fd, opts);
      // Truncating to 0 first drops old contents, so the new pool reads as zeros.
      fs.ftruncateSync(fd, 0);
      fs.ftruncateSync(fd, sizeBytes);
      if (!opts.sparse) {
        try {
          preallocate(fd, sizeBytes, opts.onAllocate);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
          throw new PoolError('ENOSPC', `no space on the host for a ${sizeBytes}-byte pool at ${poolPath}`, { path: poolPath, cause: err });
        }
      }
      fs.fsyncSync(fd);
      syncDirectory(path.dirname(poolPath));
      log('created %s: %d bytes (%s)', poolPath, sizeBytes, opts.sparse ? 'sparse' : 'allocated');
      return Pool.mapOpened(poolPath, fd, false, 'exclusive');
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Opens and maps an existing pool, holding the flock until close(). */
  static open(poolPath: string, opts: PoolOpenOptions = {}): Pool {
    const readOnly = opts.readOnly ?? false;
    const lock = opts.lock ?? (readOnly ? 'shared' : 'exclusive');
    const fd = fs.openSync(poolPath, readOnly ? 'r' : 'r+');
    try {
      takeLock(poolPath, fd, lock);
      return Pool.mapOpened(poolPath, fd, readOnly, lock);
    } catch (err) {
      fs.closeSync(fd); // also drops the lock
      throw err;
    }
  }

  /** Maps an open (and already locked) pool file. */
  private static mapOpened(poolPath: string, fd: number, readOnly: boolean, lock: PoolLock): Pool {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new PoolError('EINVAL', `pool ${poolPath} is not a regular file`, { path: poolPath });
    if (st.size === 0) throw new PoolError('EINVAL', `pool ${poolPath} is empty`, { path: poolPath });
    const sparse = st.blocks * 512 < st.size;
    if (readOnly) {
      log('opened %s read-only: %d bytes, read with pread, lock %s', poolPath, st.size, lock);
      return new Pool(poolPath, fd, st.size, null, true, lock, sparse);
    }
    const handle = native.map(fd, st.size, true);
    try {
      // Huge pages make the pool's page walks cheap; a refusal only costs speed.
      native.madvise(handle, 0, st.size, 'hugepage');
    } catch (err) {
      log('madvise(hugepage) refused on %s: %s', poolPath, (err as Error).message);
    }
    log('opened %s: %d bytes, %s, lock %s, %d window(s)', poolPath, st.size,
      sparse ? 'sparse' : 'allocated on the host', lock, Math.ceil(st.size / WINDOW_SIZE));
    return new Pool(poolPath, fd, st.size, handle, false, lock, sparse);
  }

  /** Reads [offset, offset+length) into a new Buffer (a copy). */
  read(offset: number, length: number): Buffer {
    this.checkRange(offset, length);
    const dst = Buffer.allocUnsafe(length);
    this.copyOut(offset, dst, 0, length);
    return dst;
  }

  /** Copies [offset, offset+length) straight into dst at dstOffset. */
  readInto(offset: number, dst: Buffer, dstOffset = 0, length = dst.length - dstOffset): void {
    if (!Number.isSafeInteger(dstOffset) || !Number.isSafeInteger(length) || dstOffset < 0 ||
      length < 0 || dstOffset + length > dst.length) {
      throw new RangeError(`readInto: dstOffset ${dstOffset} length ${length} outside a buffer of ${dst.length} bytes`);
    }
    this.checkRange(offset, length);
    this.copyOut(offset, dst, dstOffset, length);
  }

  /** Stores src at offset. */
  write(offset: number, src: Buffer | Uint8Array): void {
    this.checkWritable();
    this.checkRange(offset, src.length);
    this.storeGuard?.(offset, src.length);
    this.copyIn(offset, src, src.length);
    this.recorder?.onWrite(offset, Buffer.from(src));
  }

  /** Stores the buffers one after the other from offset: one pwritev(2). */
  writev(offset: number, parts: Buffer[]): void {
    if (parts.length === 1) {
      this.write(offset, parts[0]!);
      return;
    }
    let length = 0;
    for (const p of parts) length += p.length;
    this.checkWritable();
    this.checkRange(offset, length);
    this.storeGuard?.(offset, length);
    this.storeParts(offset, parts, length);
    if (this.recorder) {
      let at = offset;
      for (const p of parts) {
        this.recorder.onWrite(at, Buffer.from(p));
        at += p.length;
      }
    }
  }

  /**
   * Stores `before` zero bytes at offset, then src, then `after` zero bytes:
   * one pwritev(2), the bytes a fill of the zeros and a write of src would
   * leave (a new block's data and the zeros around it, written together).
   */
  writePadded(offset: number, before: number, src: Buffer, after: number): void {
    const z = zeros(Math.max(before, after));
    const parts: Buffer[] = [];
    if (before) parts.push(z.subarray(0, before));
    parts.push(src);
    if (after) parts.push(z.subarray(0, after));
    this.writev(offset, parts);
  }

  /** Stores length bytes of value (a byte, default 0) at offset. */
  fill(offset: number, length: number, value = 0): void {
    this.checkWritable();
    this.checkRange(offset, length);
    if (!Number.isInteger(value) || value < 0 || value > 255) {
      throw new RangeError(`fill: value ${value} is not a byte`);
    }
    this.storeGuard?.(offset, length);
    this.storeFill(offset, length, value);
    this.recorder?.onWrite(offset, Buffer.alloc(length, value));
  }

  /**
   * Zero a block-aligned range (pre-zeroing), every mapping reading zeros
   * at once, keeping the host blocks (ZERO_RANGE, else zeros stored: see
   * host.ts); a sparse pool reserves them first (ENOSPC: nothing done).
   * Recorded as a write of zeros.
   */
  zeroRange(offset: number, length: number): void {
    this.checkWritable();
    this.checkRange(offset, length);
    if (offset % POOL_SIZE_ALIGN !== 0 || length % POOL_SIZE_ALIGN !== 0) {
      throw new RangeError(`zeroRange: ${offset}+${length} is not 4 KiB-aligned`);
    }
    this.storeGuard?.(offset, length);
    this.host.zero(offset, length, () => this.storeZeros(offset, length));
    this.recorder?.onWrite(offset, Buffer.alloc(length));
  }

  /**
   * [offset, length] of the host's unwritten extents in a range: host blocks
   * a first store will make the host convert (host.ts, unwrittenOnHost);
   * undefined where the host cannot tell (tmpfs) or the pool is read-only.
   */
  unwrittenRanges(offset: number, length: number): Array<[number, number]> | undefined {
    this.checkOpen();
    if (this.readOnly) return undefined;
    this.checkRange(offset, length);
    return this.host.unwritten(offset, length);
  }

  /** How zeroRange zeroes on this pool's host (undefined until it first did). */
  get zeroMethod(): ZeroMethod | undefined {
    return this.host.zeroMethod;
  }

  /** Some of the pool file has no host blocks (known at open): see HostBacking. */
  get sparse(): boolean {
    return this.host.sparse;
  }

  /**
   * Make sure [offset, offset+length) has host blocks before anything is
   * stored there: a no-op for a pool allocated on the host, fallocate of the
   * 2 MiB chunks around it for a sparse one. Throws the host's ENOSPC (code
   * 'ENOSPC'), never a signal later. `inUse`: the range may hold bytes in
   * use (backing them at open), so a failure punches nothing.
   */
  reserveHost(offset: number, length: number, inUse = false): void {
    this.checkWritable();
    this.checkRange(offset, length);
    this.host.reserve(offset, length, !inUse);
  }

  /** Sparse pools: [offset, length] of the chunks not known to be backed (none for an allocated pool). */
  unbackedRanges(): Array<[number, number]> {
    return this.host.unbacked();
  }

  /** The host's side: is the pool sparse, bytes backed by host blocks, bytes the host still has. */
  hostSpace(): { sparse: boolean; allocated: number; available: number } {
    this.checkOpen();
    return this.host.space();
  }

  private storeZeros(offset: number, length: number): void {
    this.storeFill(offset, length, 0);
  }

  /** length bytes of value → pool, range already checked, not recorded. */
  private storeFill(offset: number, length: number, value: number): void {
    const src = value === 0 ? zeros(Math.min(length, COPY_CHUNK)) : Buffer.alloc(Math.min(length, COPY_CHUNK), value);
    for (let done = 0; done < length;) {
      const n = Math.min(src.length, length - done);
      this.storeAll(offset + done, src, n);
      done += n;
    }
  }

  /** memmove within the pool: the ranges may overlap. Recorded as a write at dstOffset. */
  copyWithin(dstOffset: number, srcOffset: number, length: number): void {
    this.checkWritable();
    this.checkRange(dstOffset, length);
    this.checkRange(srcOffset, length);
    if (length > 0 && dstOffset !== srcOffset) this.storeGuard?.(dstOffset, length);
    if (length === 0 || dstOffset === srcOffset) {
      this.recorder?.onWrite(dstOffset, this.read(dstOffset, length));
      return;
    }
    // Staged through a private buffer (stores go by pwrite); moving forward
    // over an overlap goes from the end backwards.
    const stage = Buffer.allocUnsafe(Math.min(length, COPY_CHUNK));
    const backwards = dstOffset > srcOffset && dstOffset < srcOffset + length;
    for (let done = 0; done < length;) {
      const n = Math.min(stage.length, length - done);
      const at = backwards ? length - done - n : done;
      this.copyOut(srcOffset + at, stage, 0, n);
      this.copyIn(dstOffset + at, stage, n);
      done += n;
    }
    this.recorder?.onWrite(dstOffset, this.read(dstOffset, length));
  }

  /** msync(MS_SYNC) of the pages covering the range: a persist barrier. */
  persist(offset: number, length: number): void {
    this.checkWritable();
    this.checkRange(offset, length);
    native.msync(this.handle!, offset, length);
    this.recorder?.onPersist(offset, length);
  }

  /** fdatasync of the whole pool file: a barrier over everything. */
  persistAll(): void {
    this.checkOpen();
    this.checkWritable();
    fs.fdatasyncSync(this.fd);
    this.recorder?.onPersist(0, this.size);
  }

  /**
   * Called with the range of every store before it is made (write, writev,
   * fill, zeroRange, copyWithin); null: none. The file system confirms a
   * commit that vouches for bytes there before they change (vouch.ts).
   */
  setStoreGuard(guard: ((offset: number, length: number) => void) | null): void {
    this.storeGuard = guard;
  }

  /** Observes every later store and barrier (test hook); null to stop. */
  setRecorder(rec: MediaRecorder | null): void {
    this.recorder = rec;
  }

  /**
   * A recorder for every Pool opened or created from now on (null to stop).
   * Test hook: the crash explorer and the image fuzzer see every store that a
   * whole open (journal replay, orphan reclaim), fsck --repair or close
   * makes, though the file system opens its pools itself.
   */
  static setDefaultRecorder(rec: MediaRecorder | null): void {
    defaultRecorder = rec;
  }

  /** Unmaps (detaching every window Buffer), unlocks, closes. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const handle = this.handle;
    this.handle = null;
    this.windows.fill(undefined);
    try {
      if (handle !== null) native.unmap(handle);
    } finally {
      // Closing the only descriptor drops the flock; unlock first anyway so a
      // descriptor leaked by a child (fork/exec) cannot keep the pool locked.
      if (this.lock !== 'none') {
        try {
          native.flock(this.fd, 'unlock');
        } catch (err) {
          log('unlock of %s failed: %s', this.path, (err as Error).message);
        }
      }
      fs.closeSync(this.fd);
      this.fd = -1;
      log('closed %s', this.path);
    }
  }

  /** The cached Buffer over the window holding pool offset pos. */
  private windowAt(pos: number): Buffer {
    const i = Math.floor(pos / WINDOW_SIZE);
    let w = this.windows[i];
    if (w === undefined) {
      const start = i * WINDOW_SIZE;
      w = Buffer.from(native.view(this.handle!, start, Math.min(WINDOW_SIZE, this.size - start)));
      this.windows[i] = w;
    }
    return w;
  }

  /** Pool → dst, range already checked. */
  private copyOut(offset: number, dst: Uint8Array, dstOffset: number, length: number): void {
    if (this.handle === null) {
      for (let done = 0; done < length;) {
        const n = fs.readSync(this.fd, dst, dstOffset + done, length - done, offset + done);
        if (n === 0) throw new PoolError('EINVAL', `pool ${this.path} is shorter than ${this.size} bytes now`, { path: this.path });
        done += n;
      }
      return;
    }
    this.eachWindow(offset, length, (w, wo, done, n) => w.copy(dst, dstOffset + done, wo, wo + n));
  }

  /** src[0, length) → pool, range already checked, not recorded. */
  private copyIn(offset: number, src: Uint8Array, length: number): void {
    this.storeAll(offset, src, length);
  }

  /** pwrite of src[0, length) at offset, to the end (a short write goes on where it stopped). */
  private storeAll(offset: number, src: Uint8Array, length: number): void {
    for (let done = 0; done < length;) done += fs.writeSync(this.fd, src, done, length - done, offset + done);
  }

  /** pwritev of parts (length bytes in all) at offset, to the end. */
  private storeParts(offset: number, parts: Buffer[], length: number): void {
    const n = fs.writevSync(this.fd, parts, offset);
    if (n < length) this.storeAll(offset + n, Buffer.concat(parts).subarray(n), length - n);
  }

  /**
   * The pieces of [offset, offset+length), one per window it crosses (range
   * already checked, the pool mapped): fn gets the window, the offset in it,
   * how many bytes of the range came before, and the piece's length.
   */
  private eachWindow(offset: number, length: number, fn: (w: Buffer, wo: number, done: number, n: number) => void): void {
    for (let done = 0; done < length;) {
      const pos = offset + done;
      const w = this.windowAt(pos);
      const wo = pos % WINDOW_SIZE;
      const n = Math.min(length - done, w.length - wo);
      fn(w, wo, done, n);
      done += n;
    }
  }

  /** Out of range is a caller's bug: RangeError. A closed pool is EBADF. */
  private checkRange(offset: number, length: number): void {
    this.checkOpen();
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 ||
      length < 0 || offset + length > this.size) {
      throw new RangeError(
        `pool access out of range: offset ${offset} length ${length} pool size ${this.size}`);
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new PoolError('EBADF', `pool ${this.path} is closed`, { path: this.path });
  }

  private checkWritable(): void {
    if (this.readOnly) throw new PoolError('EROFS', `pool ${this.path} is open read-only`, { path: this.path });
  }
}
