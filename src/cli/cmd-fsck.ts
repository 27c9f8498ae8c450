/** daxvm fsck POOL [--repair] [--json]: exit code as e2fsck's (0 clean, 1 corrected, 4 uncorrected, 8 error). */
import path from 'node:path';
import { fsck, PoolError, type FsckReport } from '../fs/index.js';
import { CliError, EXIT, poolFailure } from './errors.js';
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
  return lines.join('\n') + '\n';
}

export function cmdFsck(poolArg: string, opts: FsckOptions): number {
  const pool = path.resolve(poolArg);
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
  else process.stdout.write(formatFsckReport(pool, report, opts.repair ?? false));
  return report.exitCode;
}
