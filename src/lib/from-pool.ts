/**
 * A mapping made out of the pool, once the file is known (inode and
 * generation): attach (the range is one run of the pool: a Buffer over the
 * process's pool view, no syscall, no new VMA, made with its lease in one
 * native call) or stitch (fragmented: one span of fixed maps, one per run,
 * 2 MiB and 1 GiB entries taken whole). Returns the Mapping, or why the
 * pool cannot serve the range (a string: the caller falls back).
 */
import { constants as osConstants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { native, ATTACH, OUT, type LeaseHandle, type PoolView } from './native.js';
import { MAP_DAXVM_BATCHING, MAP_DAXVM_EPHEMERAL, MAP_DAXVM_NOSYNC } from './flags.js';
import { Mapping, type Tracking } from './mapping.js';
import { tableProblem, type PoolAccess, type TableRead } from './pool.js';

const PAGE = 4096;

/** Attempts at leasing a table that keeps changing under us before giving up on it. */
const LEASE_TRIES = 8;
const { EAGAIN } = osConstants.errno;

/** What the caller asks for (checked already). */
export interface PoolRequest {
  /** For messages and `mapping.path`. */
  path: string;
  offset: number;
  length: number;
  prot: 'r' | 'rw';
  flags: number;
  priv: boolean;
  /** Where the path was resolved (the shared namespace, or the mount and why not the namespace). */
  resolved: 'namespace' | 'mount';
  resolveReason?: string;
  /** The file's inode number (mapFromPool sets it): msync and unmap move the mtime of the file the path names only if it is this one. */
  ino?: number;
}

/** How the view is chosen and the mapping tracked, from the request and the knobs. */
interface Setup {
  view: PoolView;
  writable: boolean;
  nosync: boolean;
  tracked: boolean;
  tracking: Tracking;
  zombieMaxPages: number;
  first: number;
  end: number;
}

function setup(q: PoolRequest, pool: PoolAccess, view: PoolView | undefined): Setup {
  const writable = q.prot === 'rw';
  const shared = writable && !q.priv;
  const knobs = pool.knobs();
  const nosync = shared && ((q.flags & MAP_DAXVM_NOSYNC) !== 0 || knobs.msync === 0);
  // Which view: read-only for 'r' and for private (copy-on-write reads the pool through it).
  view ??= shared ? pool.view(nosync ? 'rw-untracked' : 'rw') : pool.ro;
  const tracked = shared && !nosync && view.tracked;
  return {
    view, writable, nosync, tracked, tracking: !shared || nosync ? 'none' : tracked ? 'pages' : 'whole-range',
    zombieMaxPages: Math.max(1, knobs.zombieMaxPages), first: q.offset / PAGE, end: Math.ceil((q.offset + q.length) / PAGE),
  };
}

/** The attached Mapping over `buffer` (made by attach or adopt; its lease is out[OUT.LEASE]), armed when tracked. */
function attached(q: PoolRequest, pool: PoolAccess, s: Setup, buffer: Buffer, base: number, leaves: TableRead['leaves']): Mapping {
  const leaseId = out[OUT.LEASE]!;
  try {
    if (s.tracked) native.syncWritten(s.view.handle, base, q.length, true); // arm (and write back strays)
  } catch (err) {
    native.release(buffer, leaseId);
    throw err;
  }
  return new Mapping({
    path: q.path, offset: q.offset, length: q.length, prot: q.prot, flags: q.flags, private: false,
    batching: (q.flags & MAP_DAXVM_BATCHING) !== 0, nosync: s.nosync, usedTables: true, runs: 1, leaves, zombieMaxPages: s.zombieMaxPages,
    tracking: s.tracking, mode: 'attached', buffer, ephemeral: false, handle: s.view.handle, base, address: s.view.address + base,
    leaseId, pool, resolved: q.resolved, resolveReason: q.resolveReason, ino: q.ino,
  });
}

/**
 * Map a range whose table was read and leased already (the namespace's
 * path): attached when it is one run (the lease moves into the Buffer's
 * record), else stitched (the span takes the lease over). On a throw the
 * lease handle may still hold the lease: the caller drops it.
 */
export function mapLeased(q: PoolRequest, pool: PoolAccess, table: TableRead, lease: LeaseHandle): Mapping {
  const s = setup(q, pool, undefined);
  const [only] = table.runs;
  if (only && table.runs.length === 1 && !q.priv) {
    const base = only.physical * PAGE;
    return attached(q, pool, s, native.adopt(s.view.handle, base, q.length, lease, out), base, table.leaves);
  }
  return stitched(q, pool, s, table, lease);
}

/** What attach reports besides the table (one per thread: the calls are synchronous). */
const out = new Float64Array(OUT.HEAD + 2);

const holesReason = (holes: number): string => `${holes} page(s) of the range have no block (holes, or past the end of the file)`;

/**
 * Map [offset, +length) of inode `ino` (generation `gen`) from the pool, or
 * say why not. `confirm`: an fsync of the file through the mount, asked once
 * when a writable lease meets blocks the daemon's newest commit vouches for
 * by checksum (EAGAIN: docs/format.md, "The lease table"); its FSYNC
 * confirms that commit, and the lease is taken again.
 */
export function mapFromPool(q: PoolRequest, pool: PoolAccess, ino: number, gen: number, confirm?: () => void): Mapping | string {
  let confirmed = confirm === undefined;
  const again = (errno: number): boolean => {
    if (confirmed || errno !== EAGAIN) return false;
    confirmed = true;
    try {
      confirm!();
      return true;
    } catch {
      return false; // the reason stays EAGAIN: the mount path serves the mapping
    }
  };
  q.ino ??= ino;
  let s: Setup;
  try {
    s = setup(q, pool, undefined);
  } catch (err) {
    // No write access to the pool: say so only for a range the pool could have served.
    const t = pool.readTable(ino, gen, q.offset / PAGE, Math.ceil((q.offset + q.length) / PAGE));
    if ('problem' in t) return t.problem;
    if (t.holes > 0) return holesReason(t.holes);
    throw err;
  }
  if (!q.priv) {
    let got = native.attach(pool.ro.handle, ino, gen, s.first, s.end, s.view.handle, q.length, out);
    if (got === ATTACH.NO_LEASE && again(out[OUT.ERRNO]!)) got = native.attach(pool.ro.handle, ino, gen, s.first, s.end, s.view.handle, q.length, out);
    if (typeof got !== 'number') {
      const leaves = { pte: out[OUT.PTE]!, pmd: out[OUT.PMD]!, pud: out[OUT.PUD]! };
      return attached(q, pool, s, got, out[OUT.HEAD]! * PAGE, leaves);
    }
    if (got === ATTACH.HOLES) return holesReason(out[OUT.HOLES]!);
    if (got === ATTACH.NO_LEASE) return `no lease on the pool's blocks: ${getSystemErrorName(-out[OUT.ERRNO]!)}`;
    if (got === ATTACH.CHANGING) return 'the table kept changing while being leased';
    if (got !== ATTACH.SPLIT) return tableProblem(got, ino);
  }

  // Stitch: read the runs, lease them, make sure they are still the file's (docs/format.md, "Leases: the ordering argument").
  for (let attempt = 0; attempt < LEASE_TRIES; attempt++) {
    const t = pool.readTable(ino, gen, s.first, s.end);
    if ('problem' in t) return t.problem;
    if (t.holes > 0) return holesReason(t.holes);
    let lease: LeaseHandle;
    try {
      lease = native.lease(pool.ro.handle, runBytes(t), ino, gen, s.writable && !q.priv);
    } catch (err) {
      if (again(-((err as NodeJS.ErrnoException).errno ?? 0))) {
        attempt--;
        continue;
      }
      return `no lease on the pool's blocks: ${(err as Error).message}`;
    }
    if (!pool.unchanged(ino, t.seq)) {
      native.dropLease(lease);
      continue;
    }
    try {
      return stitched(q, pool, s, t, lease);
    } catch (err) {
      native.dropLease(lease);
      throw err;
    }
  }
  return 'the table kept changing while being leased';
}

/** One span, one fixed map per run (private: copy-on-write of each run); the span takes the lease over. */
function stitched(q: PoolRequest, pool: PoolAccess, s: Setup, table: TableRead, lease: LeaseHandle): Mapping {
  const span = native.stitch(s.view.handle, runBytes(table), s.writable, q.priv, (q.flags & MAP_DAXVM_EPHEMERAL) !== 0, s.tracked, lease);
  const buffer = Buffer.from(native.view(span.handle, 0, q.length));
  return new Mapping({
    path: q.path, offset: q.offset, length: q.length, prot: q.prot, flags: q.flags, private: q.priv,
    batching: (q.flags & MAP_DAXVM_BATCHING) !== 0, nosync: s.nosync, usedTables: true, runs: table.runs.length,
    leaves: table.leaves, zombieMaxPages: s.zombieMaxPages, tracking: s.tracking,
    mode: 'stitched', buffer, ephemeral: span.heap, handle: span.handle, base: 0, address: span.address, pool,
    resolved: q.resolved, resolveReason: q.resolveReason, ino: q.ino,
  });
}

/** The runs as [pool byte offset, byte length, ...]. */
function runBytes(table: TableRead): Float64Array {
  const runs = new Float64Array(table.runs.length * 2);
  table.runs.forEach((r, i) => {
    runs[2 * i] = r.physical * PAGE;
    runs[2 * i + 1] = r.count * PAGE;
  });
  return runs;
}
