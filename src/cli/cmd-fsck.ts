/** daxvm fsck POOL [--repair] [--json]: exit code as e2fsck's (0 clean, 1 corrected, 4 uncorrected, 8 error). */
import { statSync } from 'node:fs';
import path from 'node:path';
import { fsck, PoolError, type FsckReport } from '../fs/index.js';
import { readMounts, FSTYPE } from '../core/mountinfo.js';
import { CliError, EXIT, poolFailure } from '../core/errors.js';
import { pasteable } from './invocation.js';
import { warnIfLoose } from './pool-mode.js';
import { progressBar } from './progress.js';

export interface FsckOptions {
  repair?: boolean;
  json?: boolean;
}

export function formatFsckReport(pool: string, r: FsckReport, repair: boolean): string {
  const lines: string[] = [];
  for (const p of r.problems) {
    const tag = p.fixed ? 'fixed' : repair ? 'NOT FIXED' : 'problem';
    lines.push(`  ${tag.padEnd(9)} ${p.kind}: ${p.message}`);
  }
  const s = r.summary;
  if (s.journalTransactionsDiscarded) {
    // As e2fsck's "journal transaction was corrupt, replay was aborted": a note, not a problem.
    lines.push(`${pool}: the journal's last transaction is not replayed: the file data it vouches for never reached the media (a crash inside its fsync)`);
  }
  lines.push(
    `${pool}: ${s.inodes} inodes (${s.dirs} directories, ${s.files} files), ` +
    `${s.blocksUsed} blocks used, ${s.blocksFree} free`,
  );
  const fixed = r.problems.filter(p => p.fixed).length;
  const left = r.problems.length - fixed;
  switch (r.exitCode) {
    case 0: lines.push(`${pool}: clean`); break;
    case 1: lines.push(`${pool}: ${fixed} problem(s) corrected`); break;
    case 4:
      lines.push(`${pool}: ${left} problem(s) left uncorrected` + (repair ? '' : ` (run: daxvm fsck --repair ${pool})`));
      break;
    default: lines.push(`${pool}: fsck could not complete`);
  }
  return pasteable(lines.join('\n') + '\n');
}

/** Why fsck could not run, as e2fsck says it: the path and the reason, then the fix. */
function couldNotCheck(pool: string, report: FsckReport): CliError {
  const [reason = 'unknown error', ...fix] = (report.error ?? '').split('\n');
  let hint = fix.join(' ') || undefined;
  if (/in use/.test(reason)) {
    const at = readMounts().find(m => m.fstype === FSTYPE && m.source === pool);
    if (at) return new CliError(`${pool} is mounted on ${at.mountpoint}: fsck checks an unmounted pool`, EXIT.OPERATIONAL, `unmount it first: daxvm umount ${at.mountpoint}`);
  }
  if (/does not exist/.test(reason)) hint = 'check the path';
  return new CliError(`fsck of ${pool} could not complete: ${reason.startsWith(`${pool}: `) ? reason.slice(pool.length + 2) : reason}`, EXIT.OPERATIONAL, hint);
}

export function cmdFsck(poolArg: string, opts: FsckOptions): number {
  const pool = path.resolve(poolArg);
  let isDir = false;
  try { isDir = statSync(pool).isDirectory(); } catch { /* missing: fsck says so */ }
  if (isDir) throw new CliError(`${pool} is a directory, not a pool file`, EXIT.OPERATIONAL, 'give the pool file (daxvm info MOUNTPOINT names a mount\'s pool)');
  warnIfLoose(pool);
  const bar = progressBar(opts.repair ? 'fsck --repair' : 'fsck');
  let report: FsckReport;
  try {
    report = fsck(pool, { repair: opts.repair ?? false, ...(bar.onProgress ? { onProgress: bar.onProgress } : {}) });
  } catch (err) {
    if (err instanceof PoolError) throw poolFailure(err, EXIT.OPERATIONAL);
    throw new CliError(`fsck of ${pool} failed: ${(err as Error).message}`, EXIT.OPERATIONAL);
  } finally {
    bar.stop();
  }
  if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else if (report.exitCode === EXIT.OPERATIONAL && report.problems.length === 0) throw couldNotCheck(pool, report);
  else process.stdout.write(formatFsckReport(pool, report, opts.repair ?? false));
  if (report.exitCode === EXIT.OPERATIONAL && report.error && report.problems.length > 0) throw couldNotCheck(pool, report);
  return report.exitCode;
}
