/**
 * mmap(path, options): resolve through the mount, then attach (a range the
 * pool holds contiguously: a Buffer over the process's pool view, no
 * syscall, no new VMA), stitch (fragmented: one span of fixed maps, one per
 * run, 2 MiB and 1 GiB entries taken whole), or fall back to the vanilla
 * path (no MAP_DAXVM, not a daxvm mount, no tables, no access to the pool,
 * holes in the range), and say which in `mapping.mode`.
 */
import fs from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { DaxvmError, invalid } from './errors.js';
import { KNOWN_FLAGS, MAP_DAXVM, MAP_DAXVM_BATCHING, MAP_DAXVM_EPHEMERAL } from './flags.js';
import { mapFromPool, mapLeased } from './from-pool.js';
import { native } from './native.js';
import { Mapping, type Tracking } from './mapping.js';
import { PoolAccess } from './pool.js';
import type { PptInfo } from '../core/format/ppt.js';
import { mountOf, openForMapping, readPpt, type DaxvmMount, type Opened } from './resolve.js';
import { mapVanilla } from './vanilla.js';
import { mapDirect, planDirect } from './direct.js';

const PAGE = 4096;

export interface MmapOptions {
  /** File offset, a multiple of 4096 (default 0). */
  offset?: number;
  /** Bytes to map (default: from offset to the end of the file). */
  length?: number;
  /** 'r' (default) or 'rw'. The file is opened with this mode: the kernel checks the permission. */
  prot?: 'r' | 'rw';
  /** MAP_DAXVM, MAP_DAXVM_BATCHING, MAP_DAXVM_EPHEMERAL, MAP_DAXVM_NOSYNC, or'ed. */
  flags?: number;
  /** Copy-on-write: stores stay in this process, the file never changes. */
  private?: boolean;
  /**
   * Fault the whole range in at mmap time (Linux MAP_POPULATE) on the vanilla
   * path, so the reads through FUSE happen in mmap rather than at first
   * touch. Ignored for mappings made from the pool (attached, stitched).
   */
  populate?: boolean;
}

interface Checked {
  offset: number;
  length: number | undefined;
  prot: 'r' | 'rw';
  flags: number;
  priv: boolean;
  populate: boolean;
}

function check(file: string | Buffer, o: MmapOptions): Checked {
  if (!(typeof file === 'string' || Buffer.isBuffer(file)) || file.length === 0) {
    throw new DaxvmError({ code: 'EINVAL', syscall: 'mmap' }, 'path must be a non-empty string, or a Buffer of its raw bytes');
  }
  const shown = String(file);
  if (o === null || typeof o !== 'object') throw invalid(`options must be an object, not ${o === null ? 'null' : typeof o}`, shown);
  const offset = o.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % PAGE !== 0) throw invalid(`offset ${offset} is not a non-negative multiple of ${PAGE}`, shown);
  if (o.length !== undefined && (!Number.isInteger(o.length) || o.length <= 0)) throw invalid(`length ${o.length} is not a positive integer`, shown);
  if (o.length !== undefined && o.length > bufferConstants.MAX_LENGTH) throw invalid(`length ${o.length} exceeds a Buffer's ${bufferConstants.MAX_LENGTH} bytes`, shown);
  const prot = o.prot ?? 'r';
  if (prot !== 'r' && prot !== 'rw') throw invalid(`prot must be 'r' or 'rw', not ${String(prot)}`, shown);
  let flags = o.flags ?? 0;
  if (!Number.isInteger(flags)) throw invalid(`flags must be a number (MAP_DAXVM | ...), not ${typeof flags === 'string' ? `'${flags}'` : String(flags)}`, shown);
  if ((flags & ~KNOWN_FLAGS) !== 0) throw invalid(`unknown flags 0x${((flags & ~KNOWN_FLAGS) >>> 0).toString(16)}`, shown);
  const priv = o.private ?? false;
  if (typeof priv !== 'boolean') throw invalid('private must be a boolean', shown);
  const populate = o.populate ?? false;
  if (typeof populate !== 'boolean') throw invalid('populate must be a boolean', shown);
  if (flags & MAP_DAXVM_EPHEMERAL) {
    if (priv) throw invalid('MAP_DAXVM_EPHEMERAL needs a shared mapping', shown);
    flags |= MAP_DAXVM; // implied
  }
  return { offset, length: o.length, prot, flags, priv, populate };
}

interface Resolved {
  /** The file's size: from user.daxvm.ppt (the daemon's answer) or fstat. */
  size: number;
  mount?: DaxvmMount;
  ppt?: PptInfo;
  /** Why the pool cannot be used, known before the range is. */
  reason?: string;
}

/** The file's mount and table whereabouts (two round trips to the daemon at most: open, fgetxattr). */
function resolve(opened: Opened, c: Checked): Resolved {
  const fstatSize = (): number => fs.fstatSync(opened.fd).size;
  if (!(c.flags & MAP_DAXVM)) return { size: fstatSize(), reason: 'MAP_DAXVM not set' };
  const mount = mountOf(opened);
  if (!mount) return { size: fstatSize(), reason: 'not on a daxvm mount' };
  const ppt = readPpt(opened);
  if (!ppt) return { size: fstatSize(), mount, reason: 'no user.daxvm.ppt on the file' };
  if (!ppt.root) return { size: ppt.size, mount, ppt, reason: 'the file has no page tables (knob page_tables_on is 0)' };
  return { size: ppt.size, mount, ppt };
}

/** The process's access to the file's pool (opened once per mount seen: the mount's entry keeps it), or why there is none. */
function poolOf(r: Resolved): PoolAccess | string {
  if (r.reason || !r.mount || !r.ppt) return r.reason ?? 'unknown';
  if (r.mount.access === undefined) {
    try {
      r.mount.access = PoolAccess.get(r.mount.pool);
    } catch (err) {
      r.mount.access = `no access to the pool file ${r.mount.pool} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }
  return r.mount.access as PoolAccess | string;
}

/**
 * Map `length` bytes of a file from `offset`. `file` is a path, or a Buffer
 * of its raw bytes (a name that is not UTF-8). Throws Node-style errors
 * (`err.code` 'ENOENT', 'EACCES', 'EISDIR', 'EINVAL'...).
 */
export function mmap(file: string | Buffer, options: MmapOptions = {}): Mapping {
  const c = check(file, options);
  const writable = c.prot === 'rw';
  let resolveReason: string | undefined;
  if (c.flags & MAP_DAXVM) {
    // The namespace first: no request to the daemon (direct.ts); else the mount, with the reason.
    const fast = !writable && !c.priv ? mapDirect(file, c.offset, c.length, c.flags) : null;
    if (fast instanceof Mapping) return fast;
    const d = fast ?? planDirect(file, c.offset, c.length, writable && !c.priv);
    if (typeof d === 'string') {
      resolveReason = d;
    } else {
      try {
        if (d.length > bufferConstants.MAX_LENGTH) throw invalid(`length ${d.length} exceeds a Buffer's ${bufferConstants.MAX_LENGTH} bytes`, d.path);
        return mapLeased({ path: d.path, offset: c.offset, length: d.length, prot: c.prot, flags: c.flags, priv: c.priv, resolved: 'namespace', ino: d.ino }, d.pool, d.table, d.lease);
      } catch (err) {
        native.dropLease(d.lease);
        throw err;
      }
    }
  }
  const opened = openForMapping(file, writable && !c.priv);
  try {
    const r = resolve(opened, c);
    // A range that starts at or past the end has no page of the file: its first touch would be SIGBUS.
    if (c.offset >= r.size) throw invalid(`nothing to map: offset ${c.offset} is at or past the end of the file (${r.size} bytes); extend the file first`, opened.path);
    const length = c.length ?? r.size - c.offset;
    if (length > bufferConstants.MAX_LENGTH) throw invalid(`length ${length} exceeds a Buffer's ${bufferConstants.MAX_LENGTH} bytes`, opened.path);
    const pool = poolOf(r);
    const q = { path: opened.path, offset: c.offset, length, prot: c.prot, flags: c.flags, priv: c.priv, resolved: 'mount' as const, ...(resolveReason ? { resolveReason } : {}) };
    const m = typeof pool === 'string' ? pool : mapFromPool(q, pool, r.ppt!.ino, r.ppt!.gen, () => fs.fsyncSync(opened.fd));
    if (typeof m === 'string') {
      const v = mapVanilla(opened.fd, c.offset, length, writable, c.priv, opened.path, c.populate);
      const tracking: Tracking = writable && !c.priv ? 'whole-range' : 'none';
      return new Mapping({
        path: opened.path, offset: c.offset, length, prot: c.prot, flags: c.flags, private: c.priv,
        batching: (c.flags & MAP_DAXVM_BATCHING) !== 0, fd: opened.fd, mode: 'vanilla', buffer: v.buffer, tracking,
        nosync: false, usedTables: false, runs: 0, ephemeral: false, zombieMaxPages: 0, fallbackReason: m, base: 0, vanilla: v,
        resolved: 'mount', resolveReason,
      });
    }
    // The lease protects the blocks now, not the handle (an open handle is not a lease).
    fs.closeSync(opened.fd);
    return m;
  } catch (err) {
    try { fs.closeSync(opened.fd); } catch { /* closed already */ }
    throw err;
  }
}
