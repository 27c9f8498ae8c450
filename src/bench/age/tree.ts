/**
 * An aged tree on disk: its marker (`.aged.json` at the aging root, which a
 * benchmark reads to record that an image is aged and how), and the check
 * that every aged file still holds what was written.
 */
import { closeSync, fsyncSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CHUNK, Pattern, sizeFromName } from './pattern.js';

export const MARKER = '.aged.json';
export const MARKER_FORMAT = 1;

export interface AgeParams {
  /** Target fill, a fraction of the capacity. */
  fill: number;
  /** Bytes written, a multiple of the capacity. */
  churn: number;
  seed: number;
  maxFileBytes: number;
}

export interface Marker {
  /** 'running' while aging (or when aging died); 'done' or 'interrupted' at the end. */
  status: 'running' | 'done' | 'interrupted';
  params: AgeParams;
  started: string;
  finished?: string;
  /** The AgeResult (src/bench/age/ager.ts), with before/after fragmentation. */
  result?: unknown;
}

/** Write the marker and fsync it: the fsync is also a commit of everything before it. */
export function writeMarker(path: string, m: Marker): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    writeSync(fd, JSON.stringify({ format: MARKER_FORMAT, tool: 'daxvm age', ...m }, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The marker of an aging root, or null when there is none. */
export function readMarker(root: string): (Marker & { format: number }) | null {
  let text: string;
  try {
    text = readFileSync(join(root, MARKER), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return JSON.parse(text) as Marker & { format: number };
}

export interface AgedFile {
  /** Path under the aging root. */
  rel: string;
  size: number;
}

/** The aged files under `root`, sorted by path (the marker and anything not named as ours left out). */
export function listAged(root: string): AgedFile[] {
  const out: AgedFile[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isFile()) {
        const size = sizeFromName(e.name);
        if (size !== null) out.push({ rel: r, size });
      }
    }
  };
  walk('');
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

export interface VerifyReport {
  files: number;
  bytes: number;
  /** "path: what is wrong", at most `maxProblems` of them. */
  problems: string[];
  bad: number;
}

/** Read every aged file back and compare it with the pattern of the marker's seed. */
export function verifyAged(root: string, maxProblems = 20): VerifyReport {
  const marker = readMarker(root);
  if (!marker) throw new Error(`${root} has no ${MARKER}: not an aged tree`);
  const pattern = new Pattern(marker.params.seed);
  const buf = Buffer.alloc(CHUNK);
  const report: VerifyReport = { files: 0, bytes: 0, problems: [], bad: 0 };
  for (const f of listAged(root)) {
    let problem: string | null;
    try {
      problem = pattern.check(join(root, f.rel), f.rel, f.size, buf);
    } catch (err) {
      problem = (err as Error).message;
    }
    report.files++;
    report.bytes += f.size;
    if (problem) {
      report.bad++;
      if (report.problems.length < maxProblems) report.problems.push(`${f.rel}: ${problem}`);
    }
  }
  return report;
}
