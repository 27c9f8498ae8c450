/**
 * daxvm doctor [MOUNTPOINT|POOL] [--json]: what this machine offers the library
 * (FUSE, userfaultfd write-protect in async mode, PAGEMAP_SCAN, transparent
 * huge pages, and for a mounted pool whether its mapping got huge pages) and
 * what the library falls back to without each; the pool file's mode (a pool
 * other users can read or write is a problem). Exit 0 when the mount and
 * the library's fast paths work, 1 when something is missing or wrong, 2
 * when the argument is neither a daxvm mount nor a pool file. Without an
 * argument it looks at /mnt/nvmm1 (and says when nothing is mounted there).
 */
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { notAPool, readSuperblock, superblockRefusal } from '../fs/open.js';
import { daxvmMountAt, readMounts } from '../core/mountinfo.js';
import { libraryFeatures, poolHugePages, type LibraryFeatures, type PoolHugePages } from '../lib/features.js';
import { CliError, EXIT } from '../core/errors.js';
import { formatBytes, table } from '../core/output.js';
import { DEFAULT_MOUNTPOINT } from './paths.js';
import { pasteable } from './invocation.js';
import { fixCommand, looseMessage, octal, poolMode } from './pool-mode.js';

export interface DoctorOptions {
  json?: boolean;
}

export interface DoctorReport extends LibraryFeatures {
  /** This user can open /dev/fuse (not only: it exists). */
  fuse: boolean;
  /** Why not, when it cannot (ENOENT, EACCES...). */
  fuseError?: string;
  fusermount: boolean;
  /** The mount point looked at when none was given (/mnt/nvmm1), and whether a daxvm mount is there. */
  defaultMount?: { mountpoint: string; mounted: boolean };
  mount?: { mountpoint: string; pool: string; hugePages?: PoolHugePages; error?: string };
  /** The knob that decides whether MAP_DAXVM attaches (1) or falls back (0), of the mount or pool looked at. */
  pageTablesOn?: number;
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

/** Open /dev/fuse as a mount would: its existence is not enough (a user without access cannot mount). */
function openFuse(): string | undefined {
  try {
    closeSync(openSync('/dev/fuse', 'r+'));
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

/** page_tables_on as the mount's knob file reads it (a pool: as its superblock has it); undefined when it cannot be read. */
function pageTablesKnob(mnt: string | undefined, pool: string | undefined): number | undefined {
  try {
    if (mnt) return Number(readFileSync(path.join(mnt, '.daxvm', 'page_tables_on'), 'utf8').trim());
    if (pool) return readSuperblock(pool).knobs.pageTablesOn;
  } catch { /* not readable here: unknown */ }
  return undefined;
}

export function doctorReport(target?: string): DoctorReport {
  const f = libraryFeatures();
  const fuseError = openFuse();
  const fuse = fuseError === undefined;
  const fusermount = onPath('fusermount') || onPath('fusermount3');
  const fallbacks: string[] = [];
  if (!fuse || !fusermount) {
    fallbacks.push(`no FUSE for this user (${fuse ? 'no fusermount3 on PATH' : `/dev/fuse: ${fuseError}`}): nothing can be mounted`);
  }
  if (f.msync !== 'pages') {
    const why = !f.userfaultfd ? `no userfaultfd (${f.userfaultfdError})` : !f.wpAsync ? 'no UFFD_FEATURE_WP_ASYNC (Linux 6.7)'
      : !f.pagemapScan ? `no PAGEMAP_SCAN (${f.pagemapScanError ?? 'Linux 6.7'})` : 'DAXVM_NO_TRACKING is set';
    fallbacks.push(`msync() writes back whole ranges, not the pages written: ${why}`);
  }
  if (f.thp === 'never' || f.thp === undefined) fallbacks.push('transparent huge pages off: the pool is mapped with 4 KiB pages only');
  let mount: DoctorReport['mount'];
  const mounts = readMounts();
  const at = daxvmMountAt(path.resolve(target ?? DEFAULT_MOUNTPOINT), mounts);
  const defaultMount = target === undefined ? { mountpoint: DEFAULT_MOUNTPOINT, mounted: at !== undefined } : undefined;
  let poolPath = at?.source;
  let poolProblem: string | undefined;
  if (target && !at) {
    let isFile = false;
    try { isFile = statSync(path.resolve(target)).isFile(); } catch { /* reported below */ }
    const usage = 'give the mount point of a daxvm mount, a pool file, or nothing (/mnt/nvmm1)';
    if (!isFile) throw new CliError(`${path.resolve(target)} is not a daxvm mount, nor a pool file`, EXIT.USAGE, usage);
    poolPath = path.resolve(target);
    const refused = superblockRefusal(poolPath);
    // Junk is a wrong argument (as a directory is); a damaged pool is a problem doctor reports, with its fix.
    if (refused && notAPool(refused)) {
      throw new CliError(`${poolPath} is not a daxvm mount, nor a pool file: ${refused.message.replace(`${poolPath} is `, '')}`, EXIT.USAGE, usage);
    }
    if (refused) poolProblem = `${refused.message}${refused.hint ? `; ${refused.hint}` : ''}`;
  }
  const pageTablesOn = pageTablesKnob(at?.mountpoint, poolPath);
  if (pageTablesOn === 0) {
    fallbacks.push(`page_tables_on is 0${at ? ` on ${at.mountpoint}` : ` in ${poolPath}`}: files have no page tables, so MAP_DAXVM takes the vanilla path` +
      (at ? ` (turn them on: echo 1 > ${path.join(at.mountpoint, '.daxvm', 'page_tables_on')})` : ''));
  }
  const problems: string[] = poolProblem ? [poolProblem] : [];
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
  return {
    ...f, fuse, ...(fuseError ? { fuseError } : {}), fusermount, ...(defaultMount ? { defaultMount } : {}),
    ...(mount ? { mount } : {}), ...(pageTablesOn !== undefined ? { pageTablesOn } : {}), ...(pool ? { pool } : {}),
    fallbacks, problems, ok: fuse && fusermount && problems.length === 0,
  };
}

const yes = (b: boolean, extra = ''): string => (b ? `yes${extra}` : 'no');

export function formatDoctor(r: DoctorReport): string {
  const rows: [string, string][] = [
    ['kernel', r.kernel],
    ['FUSE', `${r.fuse ? 'yes (this user can open /dev/fuse)' : `no (/dev/fuse: ${r.fuseError})`}, fusermount ${yes(r.fusermount)}`],
    ['userfaultfd', r.userfaultfd ? 'yes' : `no (${r.userfaultfdError})`],
    ['  WP async', yes(r.wpAsync, ' (UFFD_FEATURE_WP_ASYNC)')],
    ['  WP unpopulated', yes(r.wpUnpopulated)],
    ['PAGEMAP_SCAN', r.pagemapScan ? 'yes' : `no (${r.pagemapScanError})`],
    ['transparent huge pages', r.thp ?? 'not available'],
    ['msync() writes back', r.msync === 'pages' ? 'exactly the 4 KiB pages written (uffd WP-async + PAGEMAP_SCAN)' : 'the whole range asked'],
  ];
  if (r.defaultMount && !r.defaultMount.mounted) rows.push(['mount', `nothing mounted on ${r.defaultMount.mountpoint} (give a mount point to check another)`]);
  if (r.mount) {
    rows.push(['mount', `${r.mount.mountpoint} (pool ${r.mount.pool})`]);
    const h = r.mount.hugePages;
    if (h) rows.push(['pool huge pages', `${h.filePmdMappedKB} kB PMD-mapped (FilePmdMapped) of ${h.rssKB} kB resident after reading ${formatBytes(h.touchedBytes)}; AnonHugePages ${h.anonHugePagesKB} kB`]);
    else rows.push(['pool', `not readable here: ${r.mount.error}`]);
  }
  if (r.pageTablesOn !== undefined) rows.push(['page_tables_on', `${r.pageTablesOn}${r.pageTablesOn ? ' (MAP_DAXVM attaches page tables)' : ' (MAP_DAXVM falls back)'}`]);
  if (r.pool) {
    rows.push(['pool file mode', r.pool.error ? `cannot stat ${r.pool.path}: ${r.pool.error}`
      : `${r.pool.mode} uid ${r.pool.uid} gid ${r.pool.gid} (${r.pool.loose ? 'OTHER USERS CAN ACCESS IT' : 'owner and group only'})`]);
  }
  let out = table(rows);
  out += r.problems.map((x) => `problem: ${x}`).join('\n') + (r.problems.length ? '\n' : '');
  if (r.fallbacks.length) out += r.fallbacks.map((x) => `fallback: ${x}`).join('\n') + '\n';
  else if (r.pageTablesOn === 1) out += 'no fallbacks: every fast path is available\n';
  else out += 'no fallbacks on this machine; whether MAP_DAXVM attaches depends on the mount (page_tables_on=1)\n';
  return out;
}

export function cmdDoctor(target: string | undefined, o: DoctorOptions): number {
  const r = doctorReport(target);
  process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : pasteable(formatDoctor(r)));
  return r.ok ? EXIT.OK : EXIT.FAILURE;
}
