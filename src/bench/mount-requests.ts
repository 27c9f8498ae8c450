#!/usr/bin/env node
/**
 * What every tool pays on the mount: FUSE requests per operation (the
 * kernel's count, from its tracepoint, and daxvm's own per-opcode counters in
 * .daxvm/stats), wall time, and daemon CPU per request, side by side with
 * bindfs over a host directory (when installed) and the host directory itself:
 *
 *   tar x of a tree (default: this package's node_modules), ls -l of 10 000
 *   entries, stat and open of a file 4 directories deep, cp -a, find, du,
 *   rm -r, touch of 10 000 files, 2000 x 16 KiB open+read+close, fsync.
 *
 *   npm run bench:mount -- [--host DIR] [--tree DIR] [--targets daxvm,bindfs,host] [--no-drop] [--json]
 *
 * Caches (dentries, inodes, pages) are dropped before each cold step unless
 * --no-drop. A benchmark, not a test: it reports, it never judges.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { readMounts, topMountAt } from '../core/mountinfo.js';
import { FuseTrace, type BlockCounts } from './fuse-trace.js';
import { TempMount } from '../core/temp-mount.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Target {
  name: string;
  /** Where the work happens. */
  dir: string;
  /** The FUSE daemon's pid (none for the host). */
  pid?: number;
  /** .daxvm/stats of the mount, for daxvm. */
  stats?: string;
  mnt?: string;
}

interface Step {
  work: string; unit: number; seconds: number; requests?: Record<string, number>; own?: Record<string, number>; cpuUs?: number;
  /** Bios the daemon (the bench itself for the host) submitted: device flushes and writes. */
  blocks?: BlockCounts;
}

const sh = (cmd: string, cwd?: string): void => {
  const r = spawnSync('bash', ['-c', `set -e -o pipefail\n${cmd}`], { cwd, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr.trim()}`);
};

function cpuUs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // utime, stime: fields 14 and 15 (1-based), in clock ticks (100 Hz).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

function ownCounts(stats?: string): Record<string, number> | undefined {
  if (!stats) return undefined;
  return (JSON.parse(readFileSync(stats, 'utf8')) as { requests: Record<string, number> }).requests;
}

function diff(a: Record<string, number> | undefined, b: Record<string, number> | undefined): Record<string, number> | undefined {
  if (!a || !b) return undefined;
  const out: Record<string, number> = {};
  for (const k of Object.keys(b)) if (b[k]! - (a[k] ?? 0) > 0) out[k] = b[k]! - (a[k] ?? 0);
  // Reading .daxvm/stats itself costs a lookup/open/read/release/getattr or so: not the work's.
  return out;
}

class Runner {
  readonly steps: Step[] = [];
  constructor(private readonly t: Target, private readonly trace: FuseTrace | undefined, private readonly drop: boolean) {}

  /** `blocks`: also count the bios of the daemon, or of this process for the host (fsync steps). */
  measure(work: string, unit: number, cold: boolean, fn: () => void, blocks = false): void {
    if (cold && this.drop) {
      // drop_caches drops clean pages only: a host file the previous steps wrote (bindfs's, the host's) stays
      // dirty in memory until write-back (up to 30 s), while daxvm's pool is clean after its commit's fdatasync.
      // Without the sync a "cold" step read bindfs's and the host's files from memory, daxvm's from the disk.
      sh('sync');
      writeFileSync('/proc/sys/vm/drop_caches', '3');
    }
    const own0 = ownCounts(this.t.stats);
    const cpu0 = cpuUs(this.t.pid);
    if (this.trace && this.t.mnt) this.trace.start(this.t.mnt);
    if (this.trace && blocks) this.trace.startBlocks();
    const t0 = process.hrtime.bigint();
    fn();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const requests = this.trace && this.t.mnt ? this.trace.stop() : undefined;
    const bios = this.trace && blocks ? this.trace.stopBlocks(this.t.pid ?? process.pid) : undefined;
    const cpu = cpuUs(this.t.pid) - cpu0;
    const own = diff(own0, ownCounts(this.t.stats));
    this.steps.push({ work, unit, seconds, ...(requests ? { requests } : {}), ...(own ? { own } : {}), ...(this.t.pid ? { cpuUs: cpu } : {}), ...(bios ? { blocks: bios } : {}) });
  }
}

/** A wrong argument: said in one line, without a stack. */
class UsageError extends Error {}

function deepFile(listing: string[]): string {
  const f = listing.find((p) => !p.endsWith('/') && p.split('/').length === 5);
  if (!f) throw new UsageError('the tree has no file 4 directories deep (the stat and open steps need one): give --tree a deeper tree');
  return f;
}

function runAll(t: Target, tarball: string, entries: number, deep: string, trace: FuseTrace | undefined, drop: boolean): Step[] {
  const r = new Runner(t, trace, drop);
  const d = t.dir;
  r.measure('tar x (per entry)', entries, true, () => sh(`mkdir x && tar -xf ${tarball} -C x`, d));
  r.measure('stat, 4 directories deep', 1, true, () => sh(`stat x/${deep}`, d));
  r.measure('open+read, 4 directories deep', 1, true, () => sh(`cat x/${deep}`, d));
  r.measure('cp -a (per entry)', entries, true, () => sh('cp -a x copy', d));
  r.measure('find (per entry)', entries, true, () => sh('find x', d));
  r.measure('du -s (per entry)', entries, true, () => sh('du -s x', d));
  r.measure('rm -r (per entry)', 2 * entries, true, () => sh('rm -r x copy', d));
  r.measure('touch 10 000 files (per file)', 10_000, false, () => sh('mkdir many && cd many && seq -w 1 10000 | xargs touch', d));
  r.measure('ls -l of 10 000 entries (per entry)', 10_000, true, () => sh('ls -l many', d));
  sh('rm -r many', d);
  mkdirSync(join(d, 'small'));
  const block = Buffer.alloc(16 * 1024, 0x5a);
  for (let i = 0; i < 2000; i++) writeFileSync(join(d, 'small', String(i)), block);
  const buf = Buffer.alloc(16 * 1024);
  const readAll = (): void => {
    for (let i = 0; i < 2000; i++) {
      const fd = openSync(join(d, 'small', String(i)), 'r');
      readSync(fd, buf, 0, buf.length, 0);
      closeSync(fd);
    }
  };
  r.measure('2000 x 16 KiB open+read+close (per file)', 2000, true, readAll);
  // Again with the names cached: the daemon's own cost per OPEN, READ and RELEASE (neither daemon keeps pages across opens).
  r.measure('the same again, names cached (per file)', 2000, false, readAll);
  r.measure('write 4 KiB + fsync (per fsync)', 100, false, () => {
    const fd = openSync(join(d, 'small', 'sync'), 'w');
    for (let i = 0; i < 100; i++) {
      writeSync(fd, block, 0, 4096);
      fsyncSync(fd);
    }
    closeSync(fd);
  }, true);
  r.measure('overwrite 4 KiB + fsync (per fsync)', 100, false, () => {
    const fd = openSync(join(d, 'small', 'sync'), 'r+');
    for (let i = 0; i < 100; i++) {
      writeSync(fd, block, 0, 4096, 0);
      fsyncSync(fd);
    }
    closeSync(fd);
  }, true);
  sh('rm -r small', d);
  return r.steps;
}

async function startBindfs(base: string): Promise<{ target: Target; stop: () => void } | string> {
  if (spawnSync('sh', ['-c', 'command -v bindfs']).status !== 0) return 'bindfs not installed';
  const src = join(base, 'bindfs-src');
  const mnt = join(base, 'bindfs-mnt');
  mkdirSync(src);
  mkdirSync(mnt);
  const child: ChildProcess = spawn('bindfs', ['-f', src, mnt], { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  while (topMountAt(mnt, readMounts())?.fstype !== 'fuse') {
    if (child.exitCode !== null || Date.now() > deadline) return 'bindfs did not mount';
    await new Promise((r) => setTimeout(r, 50));
  }
  const stop = () => {
    spawnSync('fusermount', ['-uz', mnt]);
    child.kill();
  };
  return { target: { name: 'bindfs', dir: mnt, mnt, pid: child.pid! }, stop };
}

function fmt(n: number, digits = 1): string {
  return n >= 100 ? n.toFixed(0) : n.toFixed(digits);
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--host <dir>', 'host directory for the pool, bindfs and the host runs', tmpdir())
    .option('--tree <dir>', 'tree to tar and extract', join(ROOT, 'node_modules'))
    .option('--targets <list>', 'which to run, of daxvm,bindfs,host', 'daxvm,bindfs,host')
    .option('--no-drop', 'do not drop the caches before cold steps')
    .option('--json', 'print JSON')
    .parse()
    .opts<{ host: string; tree: string; targets: string; drop: boolean; json?: boolean }>();
  const want = new Set(opts.targets.split(','));
  const base = mkdtempSync(join(resolve(opts.host), 'daxvm-bench-mount-'));
  const tarball = join(base, 'tree.tar');
  sh(`tar -cf ${tarball} -C ${dirname(resolve(opts.tree))} ${resolve(opts.tree).split('/').pop()}`);
  const listing = spawnSync('tar', ['-tf', tarball], { encoding: 'utf8', maxBuffer: 256 << 20 }).stdout.split('\n').filter(Boolean);
  const entries = listing.length;
  const deep = deepFile(listing);
  const { trace, why } = FuseTrace.open();
  const notes: string[] = [];
  if (why) notes.push(`kernel request counts: ${why}`);
  const results: Record<string, Step[]> = {};
  try {
    if (want.has('daxvm')) {
      const m = await TempMount.create(base, '4G');
      try {
        results.daxvm = runAll({ name: 'daxvm', dir: m.mnt, mnt: m.mnt, pid: m.pid, stats: join(m.mnt, '.daxvm', 'stats') },
          tarball, entries, deep, trace, opts.drop);
      } finally {
        await m.close();
      }
    }
    const b = want.has('bindfs') ? await startBindfs(base) : undefined;
    if (typeof b === 'string') notes.push(b);
    else if (b) {
      try {
        results.bindfs = runAll(b.target, tarball, entries, deep, trace, opts.drop);
      } finally {
        b.stop();
      }
    }
    if (want.has('host')) {
      mkdirSync(join(base, 'host'));
      results.host = runAll({ name: 'host', dir: join(base, 'host') }, tarball, entries, deep, trace, opts.drop);
    }
  } finally {
    trace?.close();
    rmSync(base, { recursive: true, force: true });
  }
  if (opts.json) {
    console.log(JSON.stringify({ entries, deep, results, notes }, null, 2));
    return;
  }
  const names = Object.keys(results);
  console.log(`tree: ${entries} entries (${opts.tree}); file 4 directories deep: ${deep}`);
  console.log(`| work | ${names.map((n) => `${n} s`).join(' | ')} | ${names.filter((n) => n !== 'host').map((n) => `${n} req/op`).join(' | ')} |`);
  console.log(`|---|${names.map(() => '---:').join('|')}|${names.filter((n) => n !== 'host').map(() => '---:').join('|')}|`);
  const steps = results[names[0]!]!;
  for (let i = 0; i < steps.length; i++) {
    const times = names.map((n) => fmt(results[n]![i]!.seconds, 2));
    const reqs = names.filter((n) => n !== 'host').map((n) => {
      const s = results[n]![i]!;
      return s.requests ? fmt(s.requests.total! / s.unit, 2) : 'n/a';
    });
    console.log(`| ${steps[i]!.work} | ${times.join(' | ')} | ${reqs.join(' | ')} |`);
  }
  for (const n of names.filter((x) => x !== 'host')) {
    const all = results[n]!;
    const cpu = all.reduce((s, x) => s + (x.cpuUs ?? 0), 0);
    const req = all.reduce((s, x) => s + (x.requests?.total ?? 0), 0);
    if (req) console.log(`${n}: daemon CPU ${fmt(cpu / req, 1)} µs per request (${req} requests, ${fmt(cpu / 1e6, 2)} s CPU)`);
  }
  for (const n of names) {
    for (const s of results[n]!) {
      if (!s.blocks) continue;
      const b = s.blocks;
      console.log(`${n} ${s.work}: device flushes ${fmt(b.flushes / s.unit, 2)}, writes ${fmt(b.writes / s.unit, 2)} ` +
        `(${fmt(b.kib / s.unit, 1)} KiB), submitted by ${n === 'host' ? 'the bench' : 'the daemon'}`);
    }
  }
  for (const s of results.daxvm ?? []) if (s.requests) console.log(`daxvm ${s.work}: ${JSON.stringify(s.requests)}`);
  for (const s of results.bindfs ?? []) if (s.requests) console.log(`bindfs ${s.work}: ${JSON.stringify(s.requests)}`);
  for (const note of notes) console.log(`note: ${note}`);
}

main().catch((err: unknown) => {
  console.error(`bench:mount: ${err instanceof UsageError ? err.message : (err as Error).stack ?? err}`);
  process.exit(1);
});
