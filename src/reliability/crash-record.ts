/**
 * Crash exploration, first pass: run a workload on the fs layer with the
 * media layer recording every store and persist barrier, tagged with the
 * operation that made it, beside the model's snapshot after each operation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { computeGeometry } from '../core/format/pool.js';
import { mkfs, openFileSystem } from '../fs/index.js';
import type { MediaRecorder } from '../media/types.js';
import { PAGE } from './image.js';
import type { DataWrite, Snapshot } from './model.js';
import { Driver, type Workload } from './workloads.js';

type Tagged =
  | { kind: 'write'; offset: number; bytes: Buffer; op: number }
  | { kind: 'persist'; offset: number; length: number; op: number };

class TaggingRecorder implements MediaRecorder {
  readonly events: Tagged[] = [];
  op = 0;
  onWrite(offset: number, bytes: Buffer): void {
    this.events.push({ kind: 'write', offset, bytes, op: this.op });
  }
  onPersist(offset: number, length: number): void {
    this.events.push({ kind: 'persist', offset, length, op: this.op });
  }
}

export interface Recording {
  workload: Workload;
  base: Buffer;
  events: Tagged[];
  snapshots: Snapshot[];
  writes: DataWrite[][];
  ops: string[];
  journal: [number, number];
  maxFile: number;
  /** What a pool page holds (for replay output). */
  region: (page: number) => string;
}

export function record(w: Workload, seed: number, dir: string): Recording {
  const poolPath = path.join(dir, `${w.name}.record.pool`);
  const size = w.poolMiB * 1024 * 1024;
  mkfs(poolPath, { size, force: true });
  const fsys = openFileSystem(poolPath, { commitIntervalMs: 0 });
  const rec = new TaggingRecorder();
  let driver: Driver;
  let base: Buffer;
  try {
    fsys.core.pool.persistAll(); // everything so far is durable: that is the base image
    base = fs.readFileSync(poolPath);
    fsys.core.pool.setRecorder(rec);
    driver = new Driver(fsys, seed, (op) => { rec.op = op; });
    w.run(driver);
    rec.op = driver.opCount + 1;
  } finally {
    try {
      fsys.core.pool.setRecorder(null);
      fsys.close();
    } catch {
      // closed by the workload
    }
    fs.rmSync(poolPath, { force: true });
  }
  const g = computeGeometry(size);
  let maxFile = 0;
  for (const s of driver.snapshots) for (const n of s.nodes.values()) maxFile = Math.max(maxFile, n.data.length);
  return {
    workload: w, base, events: rec.events, snapshots: driver.snapshots, writes: driver.writes, ops: driver.ops,
    journal: [g.journalStart * PAGE, (g.journalStart + g.journalBlocks) * PAGE], maxFile,
    region: (p) => {
      if (p === 0) return 'superblock';
      if (p === 1) return 'backup superblock';
      if (p < g.inodeBitmapStart) return `journal block ${p - g.journalStart}`;
      if (p < g.blockBitmapStart) return 'inode bitmap';
      if (p < g.inodeTableStart) return 'block bitmap';
      if (p < g.leaseTableStart) return `inode table (inodes ${(p - g.inodeTableStart) * 16}..${(p - g.inodeTableStart) * 16 + 15})`;
      if (p < g.dataStart) return 'lease table';
      return 'data area';
    },
  };
}

/** Every page some store of the run touched. */
export function pagesWritten(rec: Recording): number[] {
  const pages = new Set<number>();
  for (const e of rec.events) {
    if (e.kind !== 'write' || e.bytes.length === 0) continue;
    const last = Math.floor((e.offset + e.bytes.length - 1) / PAGE);
    for (let p = Math.floor(e.offset / PAGE); p <= last; p++) pages.add(p);
  }
  return [...pages];
}
