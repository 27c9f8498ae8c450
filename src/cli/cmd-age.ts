/** daxvm age MNT [--fill 70%] [--churn 5x] [--seed N] [--dir NAME] [--max-file SIZE] [--json] [--verify] */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { age, AgeError, type AgeResult } from '../bench/age/ager.js';
import type { Snapshot } from '../bench/age/snapshot.js';
import { readMarker, verifyAged } from '../bench/age/tree.js';
import { daxvmMountAt, readMounts, topMountAt } from '../core/mountinfo.js';
import { CliError, EXIT } from '../core/errors.js';
import { formatBytes, parseSize, table } from '../core/output.js';
import { progressBar } from './progress.js';

export interface AgeCliOptions {
  fill: string;
  churn: string;
  seed: string;
  dir: string;
  maxFile?: string;
  json?: boolean;
  verify?: boolean;
}

const usage = (message: string, hint?: string): CliError => new CliError(message, EXIT.USAGE, hint);

export function parseFill(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(s);
  const pct = m ? Number(m[1]) : NaN;
  if (!(pct >= 1 && pct <= 95)) throw usage(`invalid --fill '${s}': a percentage from 1% to 95%`, 'for example --fill 70%');
  return pct / 100;
}

export function parseChurn(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*x?\s*$/i.exec(s);
  const x = m ? Number(m[1]) : NaN;
  if (!(x > 0)) throw usage(`invalid --churn '${s}': bytes to write as a multiple of the capacity, more than 0`, 'for example --churn 5x');
  return x;
}

export function parseSeed(s: string): number {
  const n = /^\s*\d+\s*$/.test(s) ? Number(s) : NaN;
  if (!(n >= 0 && n <= 0xffffffff)) throw usage(`invalid --seed '${s}': an integer from 0 to 4294967295`);
  return n;
}

/** The mount point and its pool; anything but the mount point of a daxvm mount is a usage error. */
function resolveMount(target: string): { mnt: string; pool: string } {
  const mnt = path.resolve(target);
  const mounts = readMounts();
  const m = daxvmMountAt(mnt, mounts);
  if (m) return { mnt, pool: m.source };
  const other = topMountAt(mnt, mounts);
  const what = !existsSync(mnt) ? 'does not exist' : other ? `is a ${other.fstype} mount` : 'is not a mount point';
  throw usage(`${mnt} ${what}, not a daxvm mount`, `mount a pool there first: daxvm mount POOL ${mnt}`);
}

/** --dir: a path inside the mount, relative to it, out of .daxvm/. */
function resolveDir(mnt: string, dir: string): string {
  const rel = path.normalize(dir).replace(/\/+$/, '');
  if (!rel || rel === '.' || path.isAbsolute(rel) || rel.startsWith('..') || rel.split('/')[0] === '.daxvm') {
    throw usage(`invalid --dir '${dir}': a directory name inside the mount (relative to it, not .daxvm)`, 'for example --dir daxvm-age');
  }
  return path.join(mnt, rel);
}

const pct = (f: number): string => `${(100 * f).toFixed(1)}%`;

function snapRows(b: Snapshot, a: Snapshot): [string, string, string][] {
  const frag = (s: Snapshot, f: (x: NonNullable<Snapshot['fragmentation']>) => string): string =>
    s.fragmentation ? f(s.fragmentation) : '-';
  const files = (s: Snapshot): string =>
    s.fileExtents ? `${s.fileExtents.avgExtentsPerFile} (max ${s.fileExtents.maxExtents})` : '-';
  return [
    ['fill (statfs)', pct(b.fill), pct(a.fill)],
    ['free extents', frag(b, (f) => String(f.freeExtents)), frag(a, (f) => String(f.freeExtents))],
    ['largest free extent', frag(b, (f) => formatBytes(f.largestFreeExtentBlocks * 4096)), frag(a, (f) => formatBytes(f.largestFreeExtentBlocks * 4096))],
    ['free 2 MiB regions', frag(b, (f) => String(f.freeHugeRegions)), frag(a, (f) => String(f.freeHugeRegions))],
    ['extents per file', files(b), files(a)],
  ];
}

export function formatAge(r: AgeResult): string {
  const p = r.params;
  const head = `${r.status === 'done' ? 'aged' : 'aging interrupted:'} ${r.dir}: fill ${pct(p.fill)}, churn ${p.churn}x, seed ${p.seed}, files up to ${formatBytes(p.maxFileBytes)}\n`;
  const rows = snapRows(r.before, r.after);
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max('before'.length, ...rows.map((x) => x[1].length));
  const grid = [['', 'before', 'after'] as [string, string, string], ...rows]
    .map(([k, b, a]) => `${k.padEnd(w0)}  ${b.padEnd(w1)}  ${a}`).join('\n') + '\n';
  const notes = [r.before.infoError, r.after.infoError].filter(Boolean).map((e) => `(no fragmentation figures: ${e})\n`);
  return head + grid + notes.join('') + table([
    ['files', `${r.files} (${formatBytes(r.fileBytes)}) in ${r.directories} directories`],
    ['written', `${formatBytes(r.bytesWritten)} in ${r.operations} operations (${r.creates} creates, ${r.deletes} deletes)${r.enospcBackoffs ? `, ${r.enospcBackoffs} ENOSPC back-offs` : ''}`],
    ['time', `${r.seconds} s${r.fillSeconds !== null ? ` (target fill reached after ${r.fillSeconds} s)` : ''}`],
    ['marker', r.marker],
  ]);
}

function verify(root: string, json: boolean): number {
  if (!readMarker(root)) throw usage(`${root} is not an aged tree (no .aged.json)`, 'age it first: daxvm age MNT, or give its --dir');
  const r = verifyAged(root);
  if (json) process.stdout.write(JSON.stringify({ dir: root, ...r }, null, 2) + '\n');
  else {
    process.stdout.write(`${root}: ${r.files} files, ${formatBytes(r.bytes)} read back, ${r.bad} wrong\n`);
    for (const p of r.problems) process.stdout.write(`  ${p}\n`);
  }
  return r.bad === 0 ? EXIT.OK : EXIT.FAILURE;
}

export async function cmdAge(target: string, o: AgeCliOptions): Promise<number> {
  const fill = parseFill(o.fill);
  const churn = parseChurn(o.churn);
  const seed = parseSeed(o.seed);
  const maxFile = o.maxFile !== undefined ? parseSize(o.maxFile) : undefined;
  const { mnt, pool } = resolveMount(target);
  const dir = resolveDir(mnt, o.dir);
  if (o.verify) return verify(dir, o.json ?? false);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw usage(`${dir} exists and is not a directory`, 'give another --dir');
    if (readdirSync(dir).length > 0) {
      const m = readMarker(dir);
      throw usage(
        `${dir} is not empty` + (m ? ` (an aged tree: ${m.status}, seed ${m.params.seed})` : ''),
        `age into another --dir, or remove it first: rm -rf ${dir}`,
      );
    }
  }

  const ac = new AbortController();
  const onInt = (): void => ac.abort();
  process.once('SIGINT', onInt);
  const bar = progressBar('aging (MiB written)');
  let result: AgeResult;
  try {
    result = await age({
      mnt, pool, dir, fill, churn, seed, signal: ac.signal,
      ...(maxFile !== undefined ? { maxFile } : {}),
      ...(bar.onProgress ? { onProgress: (done: number, goal: number) => bar.onProgress!(Math.round(done / 2 ** 20), Math.round(goal / 2 ** 20)) } : {}),
    });
  } catch (err) {
    bar.stop();
    if (err instanceof AgeError) throw new CliError(err.message, EXIT.FAILURE, err.hint);
    const e = err as NodeJS.ErrnoException;
    throw new CliError(`aging failed: ${e.message}`, EXIT.FAILURE, `the files aged so far stay in ${dir} (its .aged.json says 'running'); check the mount, then remove them: rm -rf ${dir}`);
  } finally {
    process.removeListener('SIGINT', onInt);
  }
  bar.stop();
  if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else process.stdout.write(formatAge(result));
  return result.status === 'done' ? EXIT.OK : EXIT.FAILURE;
}
