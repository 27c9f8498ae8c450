#!/usr/bin/env node
/**
 * Figures on the library, measured through a real mount (not a test):
 *
 * 1. One mmap + touch (a byte read from every 4 KiB page) + unmap of a
 *    64 KiB and of a 64 MiB file, on each path: attached (a file the pool
 *    holds contiguously), stitched (a file written in alternating chunks with
 *    another one: 32 KiB runs for 64 KiB, 2 MiB runs for 64 MiB) and vanilla
 *    (mmap-io through the mount). Medians, with the three steps apart, the
 *    paths taken in turn; and what V8 alone charges for a Buffer over that
 *    much mapped memory.
 * 2. msync() with one dirty page in a 4 MiB and in a 1 GiB attached mapping
 *    (exact page tracking), beside the vanilla mapping's msync of the same
 *    range (the kernel's page-cache tracking through FUSE).
 *
 *   node dist/bench/lib-figures.js [--host DIR] [--json] [--runs N]
 *
 * It mounts a fresh sparse pool (2 GiB) in a child daemon, in the host
 * directory (default: the OS temp dir), and removes it at the end.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { mmap, libraryFeatures, MAP_DAXVM, type Mapping } from '../lib/index.js';
import { native } from '../lib/native.js';
import { textTable } from '../core/output.js';
import { median } from './micro/stats.js';
import { TempMount } from '../core/temp-mount.js';
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const PAGE = 4096;

const now = (): bigint => process.hrtime.bigint();
const us = (a: bigint, b: bigint): number => Number(b - a) / 1000;

function writeContiguous(path: string, size: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(Math.min(size, MiB), 0x5a);
  for (let off = 0; off < size; off += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off);
  closeSync(fd);
}

/** Two files in alternating chunks: the first one's runs alternate with the second's in the pool. */
function writeFragmented(path: string, size: number, chunk: number): void {
  const a = openSync(path, 'w');
  const b = openSync(`${path}.other`, 'w');
  const buf = Buffer.alloc(chunk, 0xa5);
  for (let off = 0; off < size; off += chunk) {
    writeSync(a, buf, 0, Math.min(chunk, size - off), off);
    writeSync(b, buf, 0, Math.min(chunk, size - off), off);
  }
  closeSync(a);
  closeSync(b);
}

interface Cycle { mode: string; size: number; runs: number; mmapUs: number; touchUs: number; unmapUs: number; totalUs: number; samples: number }

interface Sample { m: number[]; t: number[]; u: number[]; tot: number[]; mode: string; runs: number }

function once(file: string, flags: number, s: Sample, keep: boolean): void {
  const t0 = now();
  const map: Mapping = mmap(file, { flags });
  const t1 = now();
  let sum = 0;
  const b = map.buffer;
  for (let off = 0; off < b.length; off += PAGE) sum += b[off]!;
  const t2 = now();
  map.unmap();
  const t3 = now();
  if (sum < 0) throw new Error('unreachable');
  s.mode = map.mode;
  s.runs = map.runs;
  if (!keep) return;
  s.m.push(us(t0, t1)); s.t.push(us(t1, t2)); s.u.push(us(t2, t3)); s.tot.push(us(t0, t3));
}

/** The paths in turn, sample after sample, so background work in the daemon falls on all of them alike. */
function cycles(paths: Array<[string, number]>, size: number, samples: number): Cycle[] {
  const acc: Sample[] = paths.map(() => ({ m: [], t: [], u: [], tot: [], mode: '', runs: 0 }));
  for (let i = 0; i < samples + 1; i++) paths.forEach(([file, flags], k) => once(file, flags, acc[k]!, i > 0));
  return acc.map((a) => ({ mode: a.mode, size, runs: a.runs, mmapUs: median(a.m), touchUs: median(a.t), unmapUs: median(a.u), totalUs: median(a.tot), samples }));
}

/** What V8 alone charges for a Buffer over `size` bytes of mapped memory: native view + detach, nothing else. */
function bufferCost(poolPath: string, size: number, samples: number): number {
  const view = native.poolView(poolPath, 'ro');
  const t: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = now();
    const ab = native.view(view.handle, 0, size);
    native.detach(ab);
    t.push(us(t0, now()));
  }
  return median(t);
}

interface Msync { mapping: string; size: number; dirtyPages: number; pagesWritten: number; msyncUs: number; scanUs: number | null; samples: number }

function msyncCost(file: string, flags: number, size: number, samples: number, label: string): Msync {
  const map = mmap(file, { prot: 'rw', flags });
  const times: number[] = [];
  const scans: number[] = [];
  let written = 0;
  // Populate every page once (reads), so the figure is the msync, not first faults.
  let sum = 0;
  for (let off = 0; off < map.length; off += PAGE) sum += map.buffer[off]!;
  map.msync();
  for (let i = 0; i < samples; i++) {
    map.buffer[(i * 7919 * PAGE) % map.length] = i & 0xff;
    if (map.tracking === 'pages') {
      const s0 = now();
      if (map.dirtyPages !== 1) throw new Error('expected one dirty page');
      scans.push(us(s0, now())); // PAGEMAP_SCAN alone, nothing re-armed
    }
    const t0 = now();
    written = map.msync();
    times.push(us(t0, now()));
  }
  map.unmap();
  if (sum < 0) throw new Error('unreachable');
  return { mapping: `${label} (${map.mode}, ${map.tracking})`, size, dirtyPages: 1, pagesWritten: written, msyncUs: median(times), scanUs: scans.length ? median(scans) : null, samples };
}


const sizeLabel = (n: number): string => (n >= GiB ? `${n / GiB} GiB` : n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`);

const tableOf = (head: string[], rows: string[][]): string => textTable(head, rows, { rule: true });

async function main(): Promise<void> {
  const o = new Command('lib-figures')
    .option('--host <dir>', 'where the temporary pool goes', tmpdir())
    .option('--runs <n>', 'samples per figure (64 KiB; fewer for the large ones)', '200')
    .option('--json', 'print JSON')
    .parse(process.argv)
    .opts<{ host: string; runs: string; json?: boolean }>();
  const runs = Math.max(3, Number(o.runs));
  const log = (s: string) => { if (!o.json) process.stderr.write(s + '\n'); };
  const m = await TempMount.create(o.host, '2G', 'daxvm-lib-figures-');
  writeFileSync(join(m.mnt, '.daxvm', 'page_tables_on'), '1\n');
  try {
    log(`pool mounted at ${m.mnt}; writing files`);
    const files = {
      small: join(m.mnt, 'small'), smallFrag: join(m.mnt, 'small-frag'), smallVanilla: join(m.mnt, 'small-vanilla'),
      big: join(m.mnt, 'big'), bigFrag: join(m.mnt, 'big-frag'), bigVanilla: join(m.mnt, 'big-vanilla'),
      four: join(m.mnt, 'four'), giga: join(m.mnt, 'giga'),
    };
    writeContiguous(files.small, 64 * KiB);
    // The vanilla path gets files of its own: each open of a FUSE file drops its page cache,
    // which would charge the next path the cost of dropping what vanilla read.
    writeContiguous(files.smallVanilla, 64 * KiB);
    writeContiguous(files.bigVanilla, 64 * MiB);
    writeFragmented(files.smallFrag, 64 * KiB, 32 * KiB);
    writeContiguous(files.big, 64 * MiB);
    writeFragmented(files.bigFrag, 64 * MiB, 2 * MiB);
    writeContiguous(files.four, 4 * MiB);
    writeContiguous(files.giga, GiB);
    spawnSync('sync');
    await new Promise((r) => setTimeout(r, 3000)); // let the daemon's commit and pre-zeroing settle
    const all: Cycle[] = [];
    for (const [size, contiguous, fragmented, plain, n] of [
      [64 * KiB, files.small, files.smallFrag, files.smallVanilla, runs],
      [64 * MiB, files.big, files.bigFrag, files.bigVanilla, Math.max(5, Math.round(runs / 10))]] as const) {
      log(`  mmap+touch+unmap ${sizeLabel(size)}: attached, stitched, vanilla in turn`);
      const got = cycles([[contiguous, MAP_DAXVM], [fragmented, MAP_DAXVM], [plain, 0]], size, n);
      const want = ['attached', 'stitched', 'vanilla'];
      got.forEach((c, i) => { if (c.mode !== want[i]) throw new Error(`expected ${want[i]}, got ${c.mode}`); });
      all.push(...got);
    }
    const pool = readFileSync(join(m.mnt, '.daxvm', 'pool'), 'utf8').trim();
    const buffers = [64 * KiB, 64 * MiB].map((size) => ({ size, us: bufferCost(pool, size, 50) }));
    const syncs: Msync[] = [];
    for (const [path, size] of [[files.four, 4 * MiB], [files.giga, GiB]] as const) {
      log(`  msync, one dirty page in ${sizeLabel(size)}`);
      syncs.push(msyncCost(path, MAP_DAXVM, size, 30, 'MAP_DAXVM'));
      syncs.push(msyncCost(path, 0, size, 30, 'vanilla'));
    }
    const features = libraryFeatures();
    if (o.json) {
      process.stdout.write(JSON.stringify({ features, cycles: all, buffers, msync: syncs }, null, 2) + '\n');
      return;
    }
    const f1 = (x: number) => x.toFixed(1);
    process.stdout.write('mmap + touch every page + unmap, one file (medians, µs)\n');
    process.stdout.write(tableOf(['file', 'path', 'runs', 'mmap', 'touch', 'unmap', 'total', 'samples'],
      all.map((c) => [sizeLabel(c.size), c.mode, String(c.runs), f1(c.mmapUs), f1(c.touchUs), f1(c.unmapUs), f1(c.totalUs), String(c.samples)])) + '\n');
    process.stdout.write(`of which V8 alone, for a Buffer over the mapped memory (create + detach, median of 50): ${buffers.map((b) => `${sizeLabel(b.size)} ${f1(b.us)} µs`).join(', ')}\n\n`);
    process.stdout.write(`msync with one dirty page (medians of 30, µs; msync tracking on this kernel: ${features.msync})\n`);
    process.stdout.write(tableOf(['mapping size', 'mapping', 'pages written', 'msync', 'of which the scan'],
      syncs.map((s) => [sizeLabel(s.size), s.mapping, String(s.pagesWritten), f1(s.msyncUs), s.scanUs === null ? '-' : f1(s.scanUs)])) + '\n');
  } finally {
    await m.close();
  }
}

await main();
