#!/usr/bin/env node
/**
 * The library's own cost per mapping (issue 10, "Cheap mapping objects"),
 * measured in-process through a real mount (not a test):
 *
 * 1. library: mmap + unmap of an attached 16 KiB file once the file is
 *    known (inode and generation, as the daemon's user.daxvm.ppt or the
 *    shared namespace gives them): the table read, the lease, the Buffer,
 *    the Mapping, unmap. Wall and CPU time of this process, per pair.
 * 2. end to end: `mmap(path, { flags: MAP_DAXVM })` + `unmap()` of the same
 *    files: the path resolved in the shared namespace (no round trip once warm).
 * 3. V8: how much `process.memoryUsage().external` grows with a 1 GiB
 *    attached mapping, and the time of mmap and of unmap of that mapping
 *    with other large buffers alive (8 x 64 MiB Buffers, 100 000 objects).
 *
 *   node dist/bench/lib-cost.js [--host DIR] [--files N] [--rounds N] [--json]
 *
 * It mounts a fresh sparse pool (2 GiB) in a child daemon, in the host
 * directory (default: the OS temp dir), and removes it at the end.
 */
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { mmap, MAP_DAXVM, type Mapping } from '../lib/index.js';
import { mapFromPool } from '../lib/from-pool.js';
import { native } from '../lib/native.js';
import { PoolAccess } from '../lib/pool.js';
import { parsePpt, PPT_XATTR } from '../core/format/ppt.js';
import { TempMount } from '../core/temp-mount.js';
import { median } from './micro/stats.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const now = (): bigint => process.hrtime.bigint();
const cpuUs = (): number => {
  const c = process.cpuUsage();
  return c.user + c.system;
};

interface PerPair { wallUs: number; cpuUs: number; pairs: number }

/** Median over rounds of (time / pairs) for `fn` run once per file per round. */
function timed(rounds: number, files: number, fn: (i: number) => void): PerPair {
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < rounds + 1; r++) {
    const c0 = cpuUs();
    const t0 = now();
    for (let i = 0; i < files; i++) fn(i);
    const t1 = now();
    if (r === 0) continue; // warm-up
    wall.push(Number(t1 - t0) / 1000 / files);
    cpu.push((cpuUs() - c0) / files);
  }
  return { wallUs: median(wall), cpuUs: median(cpu), pairs: rounds * files };
}

function writeContiguous(path: string, size: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(Math.min(size, MiB), 0x5a);
  for (let off = 0; off < size; off += chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, size - off), off);
  closeSync(fd);
}

function expect(m: Mapping | string, what: string): Mapping {
  if (typeof m === 'string' || m.mode !== 'attached') throw new Error(`${what}: expected an attached mapping, got ${typeof m === 'string' ? m : `${m.mode} (${m.fallbackReason})`}`);
  return m;
}

async function main(): Promise<void> {
  const o = new Command('lib-cost')
    .option('--host <dir>', 'where the temporary pool goes', tmpdir())
    .option('--files <n>', 'attached 16 KiB files', '500')
    .option('--rounds <n>', 'rounds over the files (medians)', '20')
    .option('--json', 'print JSON')
    .parse(process.argv)
    .opts<{ host: string; files: string; rounds: string; json?: boolean }>();
  const nfiles = Math.max(1, Number(o.files));
  const rounds = Math.max(1, Number(o.rounds));
  const log = (s: string) => { if (!o.json) process.stderr.write(s + '\n'); };
  const m = await TempMount.create(o.host, '2G', 'daxvm-lib-cost-');
  writeFileSync(join(m.mnt, '.daxvm', 'page_tables_on'), '1\n');
  try {
    log(`pool mounted at ${m.mnt}; writing ${nfiles} files of 16 KiB and one of 1 GiB`);
    const files = Array.from({ length: nfiles }, (_, i) => join(m.mnt, `f${i}`));
    for (const f of files) writeContiguous(f, 16 * KiB);
    const giga = join(m.mnt, 'giga');
    writeContiguous(giga, GiB);
    await new Promise((r) => setTimeout(r, 2000)); // let the daemon's commit settle
    const pool = PoolAccess.get(readFileSync(join(m.mnt, '.daxvm', 'pool'), 'utf8').trim());
    const ppts = files.map((f) => parsePpt(native.getxattr(f, PPT_XATTR).toString('utf8'))!);

    log('  library: mmap + unmap once the file is known');
    const library = timed(rounds, nfiles, (i) => {
      const p = ppts[i]!;
      expect(mapFromPool({ path: files[i]!, offset: 0, length: 16 * KiB, prot: 'r', flags: MAP_DAXVM, priv: false, resolved: 'mount' }, pool, p.ino, p.gen), files[i]!).unmap();
    });
    log('  end to end: mmap(path) + unmap (resolved in the shared namespace once warm)');
    const endToEnd = timed(rounds, nfiles, (i) => { // as many pairs as above: no round trip any more (the shared namespace)
      expect(mmap(files[i]!, { flags: MAP_DAXVM }), files[i]!).unmap();
    });

    log('  1 GiB: external memory, mmap and unmap with other large buffers alive');
    const others = Array.from({ length: 8 }, () => Buffer.allocUnsafeSlow(64 * MiB));
    const objects = Array.from({ length: 100_000 }, (_, i) => ({ i, s: `o${i}` }));
    const ext0 = process.memoryUsage().external;
    const first = expect(mmap(giga, { flags: MAP_DAXVM }), giga);
    const externalGrowth = process.memoryUsage().external - ext0;
    first.unmap();
    const mmapMs: number[] = [];
    const unmapMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = now();
      const g = expect(mmap(giga, { flags: MAP_DAXVM }), giga);
      const t1 = now();
      g.unmap();
      const t2 = now();
      mmapMs.push(Number(t1 - t0) / 1e6);
      unmapMs.push(Number(t2 - t1) / 1e6);
    }
    if (others.length + objects.length < 0) throw new Error('unreachable'); // keep them alive
    const big = {
      externalGrowthMiB: externalGrowth / MiB,
      mmapMs: { median: median(mmapMs), max: Math.max(...mmapMs) },
      unmapMs: { median: median(unmapMs), max: Math.max(...unmapMs) },
    };
    if (o.json) {
      process.stdout.write(JSON.stringify({ library, endToEnd, big }, null, 2) + '\n');
      return;
    }
    const f = (x: number, d = 1) => x.toFixed(d);
    process.stdout.write(`mmap + unmap of an attached 16 KiB file (medians of ${rounds} rounds over ${nfiles} files, per pair)\n`);
    process.stdout.write(`  library (file known):  ${f(library.wallUs, 2)} µs wall, ${f(library.cpuUs, 2)} µs CPU\n`);
    process.stdout.write(`  end to end (by path):  ${f(endToEnd.wallUs, 2)} µs wall, ${f(endToEnd.cpuUs, 2)} µs CPU of this process\n`);
    process.stdout.write(`1 GiB attached mapping, 8 x 64 MiB Buffers and 100 000 objects alive\n`);
    process.stdout.write(`  external memory grows by ${f(big.externalGrowthMiB, 0)} MiB\n`);
    process.stdout.write(`  mmap:  median ${f(big.mmapMs.median, 3)} ms, max ${f(big.mmapMs.max, 3)} ms\n`);
    process.stdout.write(`  unmap: median ${f(big.unmapMs.median, 3)} ms, max ${f(big.unmapMs.max, 3)} ms\n`);
  } finally {
    await m.close();
  }
}

await main();
