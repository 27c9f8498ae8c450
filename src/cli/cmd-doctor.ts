/**
 * daxvm doctor [MOUNTPOINT|POOL] [--json]: what this machine offers the library
 * (FUSE, userfaultfd write-protect in async mode, PAGEMAP_SCAN, transparent
 * huge pages, and for a mounted pool whether its mapping got huge pages) and
 * what the library falls back to without each; the pool file's mode (a pool
 * other users can read or write is a problem). Exit 0 when the mount and
 * the library's fast paths work, 1 when something is missing or wrong.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { daxvmMountAt, readMounts, FSTYPE } from '../fuse/mountinfo.js';
import { libraryFeatures, poolHugePages, type LibraryFeatures, type PoolHugePages } from '../lib/features.js';
import { CliError, EXIT } from './errors.js';
import { formatBytes, table } from './format.js';
import { fixCommand, looseMessage, octal, poolMode } from './pool-mode.js';

export interface DoctorOptions {
  json?: boolean;
}

export interface DoctorReport extends LibraryFeatures {
  fusermount: boolean;
  mount?: { mountpoint: string; pool: string; hugePages?: PoolHugePages; error?: string };
  /** The pool file's mode (of the mount's pool, or of the pool given). */
  pool?: { path: string; mode?: string; uid?: number; gid?: number; loose?: boolean; error?: string };
  fallbacks: string[];
  /** What is wrong, with the fix (a loose pool). */
  problems: string[];
  ok: boolean;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => d && existsSync(path.join(d, cmd)));
}

export function doctorReport(target?: string): DoctorReport {
  const f = libraryFeatures();
  const fusermount = onPath('fusermount') || onPath('fusermount3');
  const fallbacks: string[] = [];
  if (!f.fuse || !fusermount) fallbacks.push('no FUSE (/dev/fuse, fusermount): nothing can be mounted');
  if (f.msync !== 'pages') {
    const why = !f.userfaultfd ? `no userfaultfd (${f.userfaultfdError})` : !f.wpAsync ? 'no UFFD_FEATURE_WP_ASYNC (Linux 6.7)'
      : !f.pagemapScan ? `no PAGEMAP_SCAN (${f.pagemapScanError ?? 'Linux 6.7'})` : 'DAXVM_NO_TRACKING is set';
    fallbacks.push(`msync() writes back whole ranges, not the pages written: ${why}`);
  }
  if (f.thp === 'never' || f.thp === undefined) fallbacks.push('transparent huge pages off: the pool is mapped with 4 KiB pages only');
  let mount: DoctorReport['mount'];
  const mounts = readMounts();
  const at = target ? daxvmMountAt(path.resolve(target), mounts) : mounts.find((m) => m.fstype === FSTYPE);
  let poolPath = at?.source;
  if (target && !at) {
    let isFile = false;
    try { isFile = statSync(path.resolve(target)).isFile(); } catch { /* reported below */ }
    if (!isFile) throw new CliError(`${path.resolve(target)} is not a daxvm mount, nor a pool file`, EXIT.FAILURE, 'give the mount point of a daxvm mount, a pool file, or nothing');
    poolPath = path.resolve(target);
  }
  const problems: string[] = [];
  let pool: DoctorReport['pool'];
  if (poolPath) {
    try {
      const m = poolMode(poolPath);
      pool = { path: poolPath, mode: octal(m.mode), uid: m.uid, gid: m.gid, loose: m.loose };
      if (m.loose) problems.push(`${looseMessage(poolPath, m)}; fix it with: ${fixCommand(poolPath)}`);
    } catch (err) {
      pool = { path: poolPath, error: (err as Error).message };
    }
  }
  if (at) {
    mount = { mountpoint: at.mountpoint, pool: at.source };
    try {
      mount.hugePages = poolHugePages(at.source);
      if (mount.hugePages.filePmdMappedKB === 0) fallbacks.push('the pool view got no huge (PMD) mappings: page walks over it use 4 KiB entries');
    } catch (err) {
      mount.error = (err as Error).message;
      fallbacks.push(`the pool ${at.source} cannot be opened here (${(err as NodeJS.ErrnoException).code ?? 'error'}): mappings take the vanilla path`);
    }
  }
  return { ...f, fusermount, ...(mount ? { mount } : {}), ...(pool ? { pool } : {}), fallbacks, problems, ok: f.fuse && fusermount && problems.length === 0 };
}

const yes = (b: boolean, extra = ''): string => (b ? `yes${extra}` : 'no');

export function formatDoctor(r: DoctorReport): string {
  const rows: [string, string][] = [
    ['kernel', r.kernel],
    ['FUSE', `${yes(r.fuse, ' (/dev/fuse)')}, fusermount ${yes(r.fusermount)}`],
    ['userfaultfd', r.userfaultfd ? 'yes' : `no (${r.userfaultfdError})`],
    ['  WP async', yes(r.wpAsync, ' (UFFD_FEATURE_WP_ASYNC)')],
    ['  WP unpopulated', yes(r.wpUnpopulated)],
    ['PAGEMAP_SCAN', r.pagemapScan ? 'yes' : `no (${r.pagemapScanError})`],
    ['transparent huge pages', r.thp ?? 'not available'],
    ['msync() writes back', r.msync === 'pages' ? 'exactly the 4 KiB pages written (uffd WP-async + PAGEMAP_SCAN)' : 'the whole range asked'],
  ];
  if (r.mount) {
    rows.push(['mount', `${r.mount.mountpoint} (pool ${r.mount.pool})`]);
    const h = r.mount.hugePages;
    if (h) rows.push(['pool huge pages', `${h.filePmdMappedKB} kB PMD-mapped (FilePmdMapped) of ${h.rssKB} kB resident after reading ${formatBytes(h.touchedBytes)}; AnonHugePages ${h.anonHugePagesKB} kB`]);
    else rows.push(['pool', `not readable here: ${r.mount.error}`]);
  }
  if (r.pool) {
    rows.push(['pool file mode', r.pool.error ? `cannot stat ${r.pool.path}: ${r.pool.error}`
      : `${r.pool.mode} uid ${r.pool.uid} gid ${r.pool.gid} (${r.pool.loose ? 'OTHER USERS CAN ACCESS IT' : 'owner and group only'})`]);
  }
  let out = table(rows);
  out += r.problems.map((x) => `problem: ${x}`).join('\n') + (r.problems.length ? '\n' : '');
  out += r.fallbacks.length ? r.fallbacks.map((x) => `fallback: ${x}`).join('\n') + '\n' : 'no fallbacks: every fast path is available\n';
  return out;
}

export function cmdDoctor(target: string | undefined, o: DoctorOptions): number {
  const r = doctorReport(target);
  process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatDoctor(r));
  return r.ok ? EXIT.OK : EXIT.FAILURE;
}
