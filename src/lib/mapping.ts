/**
 * A Mapping: the Buffer over mapped memory, how it was made, and its life:
 * msync (dirty pages written back), persist (the program's own flush),
 * unmap (explicit, idempotent; batched with MAP_DAXVM_BATCHING). A mapping
 * of the pool holds a lease in the pool's lease table on the blocks it
 * reaches (attached: a lease the shim keeps by number, dropped by unmap or,
 * for a buffer the program let go, when V8 frees its ArrayBuffer; stitched:
 * the span's), dropped once the memory is gone; a vanilla mapping keeps its
 * file handle until unmap.
 */
import fs from 'node:fs';
import { native, type MapHandle } from './native.js';
import { DaxvmError } from './errors.js';
import type { VanillaMap } from './vanilla.js';

export type MappingMode = 'attached' | 'stitched' | 'vanilla';

/**
 * How msync() finds what to write back:
 * - 'pages': the kernel's write-protect faults (userfaultfd WP-async) read
 *   and re-armed by PAGEMAP_SCAN; exactly the 4 KiB pages written;
 * - 'whole-range': msync(MS_SYNC) of the whole range asked (vanilla, or a
 *   kernel without the features); returns the pages in the range;
 * - 'none': nothing to write back ('r', private) or nosync (persist() is
 *   the flush).
 */
export type Tracking = 'pages' | 'whole-range' | 'none';

const PAGE = 4096;
const PMD_BLOCKS = 512;

export interface Leaves {
  pte: number;
  pmd: number;
  pud: number;
}

/** Adds the leaves of the page table one run stands for: 2 MiB entries where file and pool are aligned, else 4 KiB ones. */
export function addRunLeaves(leaves: Leaves, logical: number, physical: number, count: number): void {
  if ((logical - physical) % PMD_BLOCKS !== 0) {
    leaves.pte += count;
    return;
  }
  const head = Math.min(count, (PMD_BLOCKS - (logical % PMD_BLOCKS)) % PMD_BLOCKS);
  const rest = count - head;
  leaves.pte += head + (rest % PMD_BLOCKS);
  leaves.pmd += Math.floor(rest / PMD_BLOCKS);
}

/**
 * What the constructor needs; built by map.ts, from-pool.ts and direct.ts.
 * The Mapping keeps none of it but the values (direct.ts fills one object
 * per thread again and again).
 */
export interface MappingParts {
  path: string;
  offset: number;
  length: number;
  prot: 'r' | 'rw';
  flags: number;
  private: boolean;
  mode: MappingMode;
  buffer: Buffer;
  /** Vanilla: the file handle, closed at unmap. */
  fd?: number;
  /** Attached: the id of the lease on the blocks (native-shim/node/attach.c). */
  leaseId?: number;
  tracking: Tracking;
  nosync: boolean;
  usedTables: boolean;
  runs: number;
  ephemeral: boolean;
  batching: boolean;
  zombieMaxPages: number;
  fallbackReason?: string;
  /** Where the path was resolved: the shared namespace (no request to the daemon) or the mount. */
  resolved?: 'namespace' | 'mount';
  /** MAP_DAXVM resolved through the mount: why the namespace could not serve it. */
  resolveReason?: string;
  /** Absent: those of the one run at `base` when `runs` is 1 (counted when asked), none otherwise. */
  leaves?: Leaves;
  /** attached: a pool view; stitched: the span; vanilla: none. */
  handle?: MapHandle;
  /** Where the mapping starts within `handle`'s memory. */
  base: number;
  /** Virtual address of buffer[0] (attached, stitched). */
  address?: number;
  vanilla?: VanillaMap;
  /** Pool mappings: the pool, to ask whether a daemon still serves it (PoolAccess.served). */
  pool?: { served(): boolean };
  /** Pool mappings: the file's inode number, so that only that file's mtime is moved (touchMtime). */
  ino?: number;
}

/** Closes the file handle of a vanilla mapping the program dropped without unmap (its buffer was collected). */
interface Handle {
  fd: number;
  open: boolean;
  /** pinInode's descriptor (opened natively, closed the same way), not the vanilla path's open file. */
  pinned: boolean;
}

function close(h: Handle): void {
  h.open = false;
  if (h.pinned) native.unpin(h.fd);
  else fs.closeSync(h.fd);
}

const handles = new FinalizationRegistry<Handle>((h) => {
  if (!h.open) return;
  try {
    close(h);
  } catch { /* already closed */ }
});

let exitHook = false;
function flushAtExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    try {
      native.flushZombies();
    } catch { /* exiting anyway */ }
  });
}

export class Mapping {
  /** The mapped memory: pool memory itself (attached, stitched) or the mount's page cache (vanilla). Length 0 after unmap(). */
  readonly buffer: Buffer;
  /** Which path was taken. */
  readonly mode: MappingMode;
  readonly path: string;
  /** File offset of buffer[0]. */
  readonly offset: number;
  readonly length: number;
  readonly prot: 'r' | 'rw';
  readonly flags: number;
  readonly private: boolean;
  readonly tracking: Tracking;
  /** No dirty tracking (MAP_DAXVM_NOSYNC or the `msync` knob 0). */
  readonly nosync: boolean;
  /** The file's persistent page table was used (attached, stitched). */
  readonly usedTables: boolean;
  /** Pool runs behind the buffer: 1 attached, n stitched, 0 vanilla. */
  readonly runs: number;
  /** The span came from the ephemeral heap. */
  readonly ephemeral: boolean;
  readonly batching: boolean;
  /** Why the vanilla path was taken (undefined otherwise). */
  readonly fallbackReason: string | undefined;
  /** 'namespace': resolved in the daemon's shared namespace, with no request to it; 'mount': through the mount. */
  readonly resolved: 'namespace' | 'mount';
  /** Why a MAP_DAXVM mapping was resolved through the mount (undefined otherwise). */
  readonly resolveReason: string | undefined;
  /** Virtual address of buffer[0] for attached and stitched mappings (to find it in /proc/self/smaps). */
  readonly address: number | undefined;
  private readonly handle: Handle | undefined;
  private done = false;
  /** Of MappingParts, what msync and unmap need (the parts object itself is not kept: see MappingParts). */
  private readonly mapHandle: MapHandle | undefined;
  private readonly base: number;
  private readonly leaseId: number | undefined;
  private readonly vanilla: VanillaMap | undefined;
  private readonly pool: { served(): boolean } | undefined;
  private readonly ino: number | undefined;
  private readonly zombieMaxPages: number;
  /** A writable shared mapping of the pool's blocks, of a known inode: its stores move that file's mtime (touch). */
  private readonly touchesMtime: boolean;
  private leafCounts: Leaves | undefined;

  constructor(p: MappingParts) {
    this.buffer = p.buffer;
    this.mode = p.mode;
    this.path = p.path;
    this.offset = p.offset;
    this.length = p.length;
    this.prot = p.prot;
    this.flags = p.flags;
    this.private = p.private;
    this.tracking = p.tracking;
    this.nosync = p.nosync;
    this.usedTables = p.usedTables;
    this.runs = p.runs;
    this.ephemeral = p.ephemeral;
    this.batching = p.batching;
    this.fallbackReason = p.fallbackReason;
    this.resolved = p.resolved ?? 'mount';
    this.resolveReason = p.resolveReason;
    this.address = p.address;
    this.mapHandle = p.handle;
    this.base = p.base;
    this.leaseId = p.leaseId;
    this.vanilla = p.vanilla;
    this.pool = p.pool;
    this.ino = p.ino;
    this.zombieMaxPages = p.zombieMaxPages;
    this.leafCounts = p.leaves;
    this.touchesMtime = p.usedTables && p.prot === 'rw' && !p.private && !!p.ino;
    // A writable pool mapping pins its inode (O_PATH, no request): its stores move the mtime of the mapped
    // file at msync and unmap even after a rename. Vanilla mappings keep their open file instead.
    const fd = p.fd ?? (this.touchesMtime ? native.pinInode(p.path, p.ino!) : -1);
    if (fd >= 0) {
      this.handle = { fd, open: true, pinned: p.fd === undefined };
      handles.register(p.buffer.buffer, this.handle, this);
    }
  }

  /** Page-table leaves used: 4 KiB PTEs, 2 MiB and 1 GiB huge entries. */
  get leaves(): Leaves {
    if (!this.leafCounts) {
      // Counted here, not per mmap: an object fewer per mapping of one run (direct.ts).
      const l = { pte: 0, pmd: 0, pud: 0 };
      const first = this.offset / PAGE;
      if (this.runs === 1) addRunLeaves(l, first, this.base / PAGE, Math.ceil((this.offset + this.length) / PAGE) - first);
      this.leafCounts = l;
    }
    return this.leafCounts;
  }

  get unmapped(): boolean {
    return this.done;
  }

  /** Pages written since the last msync() ('pages' tracking); 0 when nothing can be written; null when unknown. */
  get dirtyPages(): number | null {
    this.live('dirtyPages');
    if (this.tracking === 'pages') return native.countWritten(this.mapHandle!, this.base, this.length);
    if (this.prot === 'r' || this.private) return 0;
    return null;
  }

  private live(what: string): void {
    if (this.done) throw new DaxvmError({ code: 'ENOMEM', syscall: what, path: this.path }, 'the mapping was unmapped');
  }

  /** [offset, +length) of the mapping, checked, rounded out to whole pages and clamped to the mapping. */
  private pages(offset: number, length: number, what: string): { off: number; len: number } {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.length) {
      throw new DaxvmError({ code: 'EINVAL', syscall: what, path: this.path }, `range ${offset}+${length} outside a mapping of ${this.length} bytes`);
    }
    const off = Math.floor(offset / PAGE) * PAGE;
    const end = Math.min(Math.ceil((offset + length) / PAGE) * PAGE, Math.ceil(this.length / PAGE) * PAGE);
    return { off, len: length === 0 ? 0 : end - off };
  }

  /**
   * Write back what was written (msync MS_SYNC of the pool pages) and return
   * how many pages: exactly those written since the last msync with 'pages'
   * tracking (and they are re-armed in the same call); every page of the
   * range with 'whole-range'; 0 with 'none' (nosync: see persist()).
   */
  msync(offset = 0, length = this.length - offset): number {
    this.live('msync');
    const { off, len } = this.pages(offset, length, 'msync');
    if (len === 0) return 0;
    let pages: number;
    switch (this.tracking) {
      case 'pages':
        pages = native.syncWritten(this.mapHandle!, this.base + off, len, true);
        break;
      case 'whole-range':
        this.flush(off, len);
        pages = len / PAGE;
        break;
      default:
        pages = 0;
    }
    if (pages > 0) {
      this.checkServed('msync', pages); // nothing written back, nothing to tell
      this.touch();
    }
    return pages;
  }

  /**
   * The file system saw no write (the stores went to the pool): the file's
   * mtime moves now, one request. Through the pinned inode, so a renamed
   * file's too; by path (only if it still names the mapped inode, never
   * another file's) when the pin could not be taken.
   */
  private touch(): void {
    if (this.touchesMtime) {
      native.touchMtime(this.path, this.ino!, this.handle?.open ? this.handle.fd : -1);
    }
  }

  /**
   * A writable mapping of the pool whose daemon is gone (the pool was
   * unmounted while the mapping lived, or the daemon died): the pages were
   * written back into the pool file all the same (nothing is lost that the
   * pool can keep), but no file system saw them: say so (ENOTCONN).
   */
  private checkServed(what: string, pages: number | undefined): void {
    const pool = this.pool;
    if (!pool || this.prot !== 'rw' || this.private || pool.served()) return;
    const written = pages === undefined ? 'the range was written back' : `${pages} page(s) were written back`;
    throw new DaxvmError({ code: 'ENOTCONN', syscall: what, path: this.path },
      `the pool is no longer mounted (its daemon closed it or died): ${written} into the pool file, but no file system has seen them; mount the pool again before relying on this file`);
  }

  /** The program's own flush of [offset, +length) (msync MS_SYNC of its pages), whatever the tracking. */
  persist(offset: number, length: number): void {
    this.live('persist');
    const { off, len } = this.pages(offset, length, 'persist');
    if (len === 0 || this.prot === 'r' || this.private) return;
    this.flush(off, len);
    this.checkServed('persist', undefined);
  }

  private flush(off: number, len: number): void {
    if (this.vanilla) this.vanilla.sync(off, Math.min(len, this.length - off));
    else native.msync(this.mapHandle!, this.base + off, len);
  }

  /** `using m = mmap(...)`: unmapped when the block ends. */
  [Symbol.dispose](): void {
    this.unmap();
  }

  /**
   * Unmap. The buffer is detached at once (length 0: nothing can reach the
   * memory through it). Stitched spans are unmapped now, or queued when
   * batching (dropped with the batch, their lease then); attached buffers
   * only stop pointing into the pool view, and their lease goes; vanilla
   * mappings let go of their pages and their file handle at once. Idempotent.
   */
  unmap(): void {
    if (this.done) return;
    this.done = true;
    try {
      // Stores not msync'ed: the mtime moves at unmap (POSIX: some time after the write reference).
      if (this.touchesMtime && (this.tracking === 'whole-range' ||
        (this.tracking === 'pages' && native.countWritten(this.mapHandle!, this.base, this.length) > 0))) this.touch();
      if (this.mode === 'attached') {
        native.release(this.buffer, this.leaseId!); // detached, then nothing reaches the blocks: the lease goes
      } else if (this.mode === 'stitched') {
        if (this.batching) {
          flushAtExit();
          native.zombie(this.mapHandle!, this.zombieMaxPages); // the span keeps its lease until its batch is dropped
        } else {
          native.unmap(this.mapHandle!);
        }
      } else {
        this.vanilla!.release();
      }
    } finally {
      if (this.handle) {
        handles.unregister(this);
        if (this.handle.open) close(this.handle);
      }
    }
  }

}
