/**
 * MAP_DAXVM with no request to the daemon: the path is resolved in the
 * shared namespace the daemon publishes (native-shim/core/ns.c: lock-free,
 * permissions checked as the kernel's default_permissions), the file's
 * extents read from it (the DRAM copy of its page table), a lease taken on
 * its blocks, and the record checked again (docs/format.md, "Leases: the
 * ordering argument"). What the namespace cannot answer for sure goes to
 * the mount path (resolve.ts), with the reason.
 *
 * A read-only mapping of a file that is one run of the pool (most small
 * files) is made in one native call (mapDirect: native-shim/node/ns_attach.c);
 * the rest is planned here step by step (planDirect) and mapped by
 * from-pool.ts.
 */
import path from 'node:path';
import { constants } from 'node:os';
import { constants as bufferConstants } from 'node:buffer';
import { getSystemErrorName } from 'node:util';
import { native, type LeaseHandle } from './native.js';
import { DaxvmError, invalid } from './errors.js';
import { PoolAccess, type Run, type TableRead } from './pool.js';
import { NS_INODE_TABLES } from '../core/format/namespace.js';
import { MAP_DAXVM_BATCHING } from './flags.js';
import { addRunLeaves, Mapping, type MappingParts } from './mapping.js';

const PAGE = 4096;
const WANT_READ = 4;
const WANT_WRITE = 2;
const EAGAIN = 11;
/** Attempts while the file keeps changing under us. */
const TRIES = 8;
const MAX_RUNS = 256;

const file = new Float64Array(10);
const runsOut = new Float64Array(2 + 3 * MAX_RUNS);
/** The pool of each mount the namespace reader knows (by its index), or why it cannot be used. */
const pools = new Map<number, PoolAccess | string>();
const errnoName = new Map<number, string>(Object.entries(constants.errno).map(([k, v]) => [v, k]));

export interface DirectPlan {
  pool: PoolAccess;
  table: TableRead;
  lease: LeaseHandle;
  length: number;
  /** The path as given, made absolute (for messages and `mapping.path`). */
  path: string;
  ino: number;
}

/** The path as the mount path shows it (path.resolve), without its cost for a path that is plain already. */
function shownPath(f: string | Buffer): string {
  if (typeof f === 'string') return f[0] === '/' && !f.includes('/.') && !f.includes('//') && !f.endsWith('/') ? f : path.resolve(f);
  const s = f.toString('latin1');
  return s.startsWith('/') ? s : `${process.cwd()}/${s}`;
}

/** Paths' bytes, kept for the paths mapped most (no Buffer made per mmap of a path seen before). */
const recent = new Map<string, Buffer>();
const RECENT_MAX = 4096;

function pathBytes(f: string): Buffer {
  let b = recent.get(f);
  if (!b) {
    if (recent.size >= RECENT_MAX) recent.clear();
    b = Buffer.from(f);
    recent.set(f, b);
  }
  return b;
}

function poolOf(mount: number): PoolAccess | string {
  let p = pools.get(mount);
  if (p === undefined) {
    const info = native.nsMountInfo(mount);
    if (!info) p = 'the namespace lost its mount';
    else {
      try {
        p = PoolAccess.get(info.pool);
      } catch (err) {
        p = `no access to the pool file ${info.pool} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
      }
    }
    pools.set(mount, p);
  }
  return p;
}

function leavesOf(runs: Run[]): { pte: number; pmd: number; pud: number } {
  const leaves = { pte: 0, pmd: 0, pud: 0 };
  for (const r of runs) addRunLeaves(leaves, r.logical, r.physical, r.count);
  return leaves;
}

/** What nsAttach answers besides a Buffer, a negative errno and a fallback code (native-shim/node/ns_attach.c). */
const NSA = { OTHER_MOUNT: 100, NO_TABLES: 101, PAST_END: 102, SPLIT: 103, HOLES: 104, BAD_BLOCK: 105, NO_LEASE: 106, CHANGING: 107, TOO_LONG: 108 } as const;
/**
 * nsAttach's io: out [mount, ino, generation, seq, size, length, first file block, pool block, blocks, lease id,
 * path plain]; in [want, offset, length (0: to the end), mount, max length] (numbers here, not arguments: cheaper).
 */
const nsOut = new Float64Array(16);
const IN = { WANT: 11, OFFSET: 12, LENGTH: 13, MOUNT: 14, MAX_LENGTH: 15 } as const;
/** The mount the last file was resolved on and its pool (most programs map from one mount): nsAttach is handed its views. */
let lastMount = -1;
let lastPool: PoolAccess | undefined;
/**
 * The parts of every mapping mapDirect makes, filled again for each (one per
 * thread, as this module is): the Mapping copies what it keeps, so a mapping
 * is the Mapping, its Buffer and its ArrayBuffer and no other object (its
 * leaves are counted when asked). Fewer bytes per mapping, fewer scavenges.
 */
const parts: MappingParts = {
  path: '', offset: 0, length: 0, prot: 'r', flags: 0, private: false, batching: false, nosync: false,
  usedTables: true, runs: 1, zombieMaxPages: 1, tracking: 'none', mode: 'attached', buffer: Buffer.alloc(0), ephemeral: false,
  handle: undefined, base: 0, address: 0, leaseId: 0, pool: undefined, resolved: 'namespace',
};
const empty = parts.buffer;

/** What the kernel would answer (rc = -errno), as the mount path throws it. */
function nsError(rc: number, f: string | Buffer): DaxvmError {
  const code = errnoName.get(-rc) ?? 'EIO';
  return new DaxvmError({ code, errno: rc, syscall: 'open', path: shownPath(f) }, native.nsReason(rc).toLowerCase());
}

const holesReason = (holes: number): string => `${holes} page(s) of the range have no block (holes, or past the end of the file)`;
const pastEnd = (offset: number, size: number, f: string | Buffer): DaxvmError =>
  invalid(`nothing to map: offset ${offset} is at or past the end of the file (${size} bytes); extend the file first`, shownPath(f));

/**
 * A read-only shared MAP_DAXVM mapping the namespace serves as one run of
 * the pool: resolve, lease, Buffer in one native call, the Mapping the only
 * object made here (its parts and leaves are its own). Returns the
 * Mapping; a string: why the mount path must be taken; null: the general
 * path (planDirect) can do what this cannot (several runs, the first file
 * of a mount). Throws what the kernel would answer, and EINVAL as mmap does.
 */
export function mapDirect(f: string | Buffer, offset: number, wanted: number | undefined, flags: number): Mapping | string | null {
  for (let round = 0; round < 2; round++) {
    const pool = lastPool;
    if (!pool) return null;
    nsOut[IN.WANT] = WANT_READ;
    nsOut[IN.OFFSET] = offset;
    nsOut[IN.LENGTH] = wanted ?? 0;
    nsOut[IN.MOUNT] = lastMount;
    nsOut[IN.MAX_LENGTH] = bufferConstants.MAX_LENGTH;
    const got = native.nsAttach(f, pool.ro.handle, nsOut);
    if (typeof got !== 'number') {
      // One run from file block nsOut[6] = offset / PAGE, nsOut[8] blocks: the Mapping counts its leaves from offset, length and base.
      const base = nsOut[7]! * PAGE;
      parts.path = typeof f === 'string' && nsOut[10] === 1 ? f : shownPath(f);
      parts.offset = offset;
      parts.length = nsOut[5]!;
      parts.flags = flags;
      parts.batching = (flags & MAP_DAXVM_BATCHING) !== 0;
      parts.buffer = Buffer.from(got);
      parts.handle = pool.ro.handle;
      parts.base = base;
      parts.address = pool.ro.address + base;
      parts.leaseId = nsOut[9]!;
      parts.pool = pool;
      const m = new Mapping(parts);
      parts.buffer = empty; // the scratch keeps no mapping's memory reachable
      parts.pool = undefined;
      return m;
    }
    switch (got) {
      case NSA.OTHER_MOUNT: {
        const p = poolOf(nsOut[0]!);
        if (typeof p === 'string') return p;
        lastMount = nsOut[0]!;
        lastPool = p;
        continue;
      }
      case NSA.NO_TABLES: return 'the file has no page tables (knob page_tables_on is 0)';
      case NSA.PAST_END: throw pastEnd(offset, nsOut[4]!, f);
      case NSA.TOO_LONG: throw invalid(`length ${nsOut[5]} exceeds a Buffer's ${bufferConstants.MAX_LENGTH} bytes`, shownPath(f));
      case NSA.SPLIT: return null;
      case NSA.HOLES: return holesReason(nsOut[8]!);
      case NSA.BAD_BLOCK: return "a run of the file outside the pool's data area";
      case NSA.NO_LEASE: return `no lease on the pool's blocks: ${getSystemErrorName(-nsOut[9]!)}`;
      case NSA.CHANGING: return 'the file kept changing while being mapped';
    }
    if (got < 0) throw nsError(got, f);
    return native.nsReason(got);
  }
  return null;
}

/**
 * A plan to map [offset, +length) of `f` from the pool, resolved without the
 * daemon; a string says why the mount path must be taken instead. Throws
 * what the kernel would answer (ENOENT, EACCES, ENOTDIR, EISDIR...), and
 * EINVAL for a range past the end, as the mount path does.
 */
export function planDirect(f: string | Buffer, offset: number, wanted: number | undefined, writable: boolean): DirectPlan | string {
  const bytes = typeof f === 'string' ? pathBytes(f) : f;
  const want = writable ? WANT_READ | WANT_WRITE : WANT_READ;
  for (let attempt = 0; attempt < TRIES; attempt++) {
    const rc = native.nsResolve(bytes, want, file);
    if (rc < 0) throw nsError(rc, f);
    if (rc > 0) return native.nsReason(rc);
    const mount = file[0]!, ino = file[1]!, gen = file[2]!, seq = file[3]!, flags = file[7]!, size = file[8]!;
    const region = file[9]!; // the region it was read in (a new daemon makes another)
    if (!(flags & NS_INODE_TABLES)) return 'the file has no page tables (knob page_tables_on is 0)';
    const pool = poolOf(mount);
    if (typeof pool === 'string') return pool;
    lastMount = mount;
    lastPool = pool;
    if (offset >= size) throw pastEnd(offset, size, f);
    const length = wanted ?? size - offset;
    const first = offset / PAGE;
    const end = Math.ceil((offset + length) / PAGE);
    const r = native.nsRuns(mount, region, ino, seq, first, end, runsOut);
    if (r === -EAGAIN) continue;
    if (r !== 0) return native.nsReason(r);
    if (runsOut[1]! > 0) return holesReason(runsOut[1]!);
    const n = runsOut[0]!;
    const g = pool.geometry;
    const runs: Run[] = [];
    const byteRuns = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      const logical = runsOut[2 + 3 * i]!, physical = runsOut[3 + 3 * i]!, count = runsOut[4 + 3 * i]!;
      if (physical < g.dataStart || physical + count > g.totalBlocks) return `block ${physical} outside the pool's data area`;
      runs.push({ logical, physical, count });
      byteRuns[2 * i] = physical * PAGE;
      byteRuns[2 * i + 1] = count * PAGE;
    }
    let lease: LeaseHandle;
    try {
      // Writable, and the blocks are vouched for (EAGAIN): the mount path confirms that commit with the file's fd.
      lease = native.lease(pool.ro.handle, byteRuns, ino, gen, writable);
    } catch (err) {
      return `no lease on the pool's blocks: ${(err as Error).message}`;
    }
    // The lease is visible (a full fence): are the blocks still the file's?
    if (native.nsUnchanged(mount, region, ino, seq)) {
      return { pool, lease, length, path: shownPath(f), ino, table: { runs, holes: 0, leaves: leavesOf(runs), size, seq } };
    }
    native.dropLease(lease);
  }
  return 'the file kept changing while being mapped';
}
