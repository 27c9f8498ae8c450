/**
 * What db-read and db-write share: their cases (access size x pattern), the
 * checks of --db-size and --sizes, and the one large file, made once per run
 * (untimed, not counted) through the mount and in the host directory, with the
 * offsets of a case's accesses.
 */
import { join } from 'node:path';
import { CliError, EXIT } from '../../core/errors.js';
import { formatBytes } from '../../core/output.js';
import { accessOffsets, DbImage, MiB } from './db-file.js';
import type { BenchContext, BenchOptions, CaseSpec } from './types.js';

const KiB = 1024;
const usage = (message: string, hint?: string): CliError => new CliError(message, EXIT.USAGE, hint);

/** One Buffer over the whole file, and mmap-io's 32-bit sizes: under 2 GiB. */
const MAX_DB = 2047 * MiB;

export function dbSizeOf(o: BenchOptions): number {
  return o.dbSize ?? (o.quick ? 16 * MiB : 1024 * MiB);
}

/** Cases: every access size (default 1 KiB and 4 KiB) x every pattern (default seq, rand), `count` accesses each unless --files. */
export function dbPlan(bench: string, o: BenchOptions, count: number): CaseSpec[] {
  if (o.threads && (o.threads.length > 1 || o.threads[0] !== 1)) throw usage(`bench ${bench} runs on one thread`);
  const dbSize = dbSizeOf(o);
  if (dbSize < MiB || dbSize > MAX_DB || dbSize % MiB !== 0) {
    throw usage(`--db-size ${formatBytes(dbSize)}: the file must be a whole number of MiB from 1m to 2047m`, 'e.g. --db-size 256m');
  }
  const sizes = o.sizes ?? [KiB, 4 * KiB];
  for (const s of sizes) {
    if (s < 512 || s > MiB || (s & (s - 1)) !== 0) {
      throw usage(`access size ${formatBytes(s)}: bench ${bench} takes powers of two from 512 bytes to 1 MiB`, 'e.g. --sizes 1k,4k');
    }
  }
  const patterns = o.patterns ?? ['seq', 'rand'];
  return sizes.flatMap((size) => patterns.map((pattern) => ({ size, threads: 1, count: o.files ?? count, params: { pattern } })));
}

export interface DbCase {
  image: DbImage;
  /** The file through the mount, and in the host directory ('' without native variants). */
  mount: string;
  native: string;
  offsets: Float64Array;
}

/** The run's file (written by the first case, found by the next ones) and this case's access offsets. */
export function openDbCase(ctx: BenchContext, c: CaseSpec, bench: string): DbCase {
  const size = dbSizeOf(ctx.options);
  const image = new DbImage(size, ctx.options.seed);
  const mount = join(ctx.scratch, 'db');
  const native = ctx.nativeDir ? join(ctx.nativeDir, 'db') : '';
  for (const [where, path] of [['through the mount', mount], ['in the host directory', native]] as const) {
    if (!path) continue;
    const took = image.ensure(path);
    if (took > 0) ctx.note(`${bench}: wrote the ${formatBytes(size)} file ${where} in ${took.toFixed(1)} s (untimed, once per run)`);
  }
  ctx.record('db_size', size);
  const pattern = c.params?.pattern === 'rand' ? 'rand' : 'seq';
  return { image, mount, native, offsets: accessOffsets(pattern, c.count, c.size, size, ctx.options.seed) };
}
