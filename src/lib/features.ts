/**
 * What this machine gives the library, and what it falls back to (read by
 * `daxvm doctor`); batched unmaps on demand; counters.
 */
import fs from 'node:fs';
import { native, type LibStats } from './native.js';
import { asDaxvmError } from './entry.js';
import { PoolAccess } from './pool.js';

export interface LibraryFeatures {
  /** /dev/fuse is there. */
  fuse: boolean;
  userfaultfd: boolean;
  userfaultfdError: string | null;
  /** UFFD_FEATURE_WP_ASYNC (Linux 6.7). */
  wpAsync: boolean;
  /** UFFD_FEATURE_WP_UNPOPULATED (Linux 6.4). */
  wpUnpopulated: boolean;
  /** The PAGEMAP_SCAN ioctl (Linux 6.7). */
  pagemapScan: boolean;
  pagemapScanError: string | null;
  /** msync() writes back exactly the pages written ('pages'), or the whole range. */
  msync: 'pages' | 'whole-range';
  /** /sys/kernel/mm/transparent_hugepage/enabled: 'always', 'madvise' or 'never' (undefined when absent). */
  thp: string | undefined;
  kernel: string;
}

function thpMode(): string | undefined {
  try {
    const s = fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    return /\[(\w+)\]/.exec(s)?.[1];
  } catch {
    return undefined;
  }
}

export function libraryFeatures(): LibraryFeatures {
  const f = native.features();
  let kernel = 'unknown';
  try {
    kernel = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch { /* not Linux */ }
  return {
    fuse: fs.existsSync('/dev/fuse'),
    userfaultfd: f.userfaultfd,
    userfaultfdError: f.userfaultfdError,
    wpAsync: f.wpAsync,
    wpUnpopulated: f.wpUnpopulated,
    pagemapScan: f.pagemapScan,
    pagemapScanError: f.pagemapScanError,
    msync: f.tracking ? 'pages' : 'whole-range',
    thp: thpMode(),
    kernel,
  };
}

/** Drop every batched (zombie) span now; returns how many. Also done at exit. */
export function flushBatched(): number {
  return native.flushZombies();
}

/** The ephemeral heap and the zombie queue, process-wide. */
export function libraryStats(): LibStats {
  return native.stats();
}

export interface PoolHugePages {
  pool: string;
  /** Bytes of the pool's read-only view read for the check. */
  touchedBytes: number;
  /** From /proc/self/smaps for the view: resident, and mapped by PMD (huge) entries. */
  rssKB: number;
  filePmdMappedKB: number;
  anonHugePagesKB: number;
}

/** Read `bytes` of a pool's data area through this process's read-only view and see how it got mapped. */
export function poolHugePages(poolPath: string, bytes = 64 * 1024 * 1024): PoolHugePages {
  let pool: PoolAccess;
  try {
    pool = PoolAccess.get(poolPath);
  } catch (err) {
    throw asDaxvmError(err, poolPath); // a missing or unreadable pool: a DaxvmError with its code, as mmap's
  }
  const start = pool.geometry.dataStart * 4096;
  const alignedStart = Math.ceil(start / (2 * 1024 * 1024)) * 2 * 1024 * 1024;
  const end = Math.min(pool.ro.size, alignedStart + bytes);
  let sum = 0;
  for (let off = alignedStart; off < end; off += 4096) sum += pool.bytes(off, 1).readUInt8(0);
  const fields = smapsFields(pool.ro.address);
  void sum;
  return {
    pool: poolPath,
    touchedBytes: Math.max(0, end - alignedStart),
    rssKB: fields.Rss ?? 0,
    filePmdMappedKB: fields.FilePmdMapped ?? 0,
    anonHugePagesKB: fields.AnonHugePages ?? 0,
  };
}

function smapsFields(address: number): Record<string, number> {
  const text = fs.readFileSync('/proc/self/smaps', 'utf8');
  let inside = false;
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const head = /^(?<from>[0-9a-f]+)-(?<to>[0-9a-f]+) /.exec(line)?.groups;
    if (head) {
      if (inside) break;
      inside = address >= parseInt(head.from ?? '', 16) && address < parseInt(head.to ?? '', 16);
      continue;
    }
    const f = inside ? /^(?<key>\w+):\s+(?<kb>\d+) kB/.exec(line)?.groups : undefined;
    if (f?.key) out[f.key] = Number(f.kb);
  }
  return out;
}
