#!/usr/bin/env node
/**
 * Figures on persistent page tables, measured through a mount (not a test):
 *
 * 1. Table storage as a share of data, from `.daxvm/kbytes_occupied` before
 *    and after writing the files with `page_tables_on` 1:
 *    1000 × 4 KiB, 1000 × 64 KiB, 1 × 1 GiB written with dd bs=1M (aligned),
 *    and 1 × 1 GiB written into a pool whose free space was cut into
 *    unaligned pieces first (fragmented: filled with 64 KiB files, then 31 of
 *    every 32 deleted).
 * 2. How long `echo 1 > .daxvm/page_tables_on` takes on 1 GiB of existing
 *    files (16 × 64 MiB, 16384 × 64 KiB), and `echo 0 >` after it.
 *
 *   node dist/bench/ppt-figures.js [--host DIR] [--json] [--only a,b,...]
 *
 * Each scenario gets a fresh sparse pool in the host directory (default: the
 * OS temp dir), mounted with `daxvm mount -f` in a child process, unmounted
 * and removed afterwards. It reports and never judges; times vary by machine.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { parsePpt, PPT_XATTR, type PptInfo } from '../core/format/ppt.js';
import { textTable } from '../core/output.js';
import { TempMount } from '../core/temp-mount.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stdout ?? '') + (r.stderr ?? '')}`.trim());
  return r.stdout;
}

function seconds(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** A temporary pool mounted by a child daemon (core's harness), with the control files this bench reads. */
class FigureMount {
  private constructor(private readonly temp: TempMount) {}

  static async create(hostDir: string, size: string, log: Log): Promise<FigureMount> {
    const temp = await TempMount.create(hostDir, size, 'daxvm-ppt-figures-');
    log(`  mounted ${size} pool at ${temp.mnt}`);
    return new FigureMount(temp);
  }

  get mnt(): string {
    return this.temp.mnt;
  }

  ctl(name: string): string {
    return join(this.mnt, '.daxvm', name);
  }

  setKnob(name: string, value: number): void {
    run('sh', ['-c', `echo ${value} > '${this.ctl(name)}'`]);
  }

  pmemKB(): number {
    const m = /^PMEM: (\d+)$/m.exec(readFileSync(this.ctl('kbytes_occupied'), 'utf8'));
    if (!m) throw new Error('kbytes_occupied: no PMEM line');
    return Number(m[1]);
  }

  stats(): Record<string, number> {
    return JSON.parse(readFileSync(this.ctl('stats'), 'utf8')) as Record<string, number>;
  }

  /** user.daxvm.ppt of a file (getfattr commits first: the pool is current afterwards). */
  ppt(rel: string): PptInfo {
    const text = run('getfattr', ['--only-values', '--absolute-names', '-n', PPT_XATTR, join(this.mnt, rel)]);
    const info = parsePpt(text);
    if (!info) throw new Error(`${rel}: ${PPT_XATTR} is ${JSON.stringify(text)}`);
    return info;
  }

  async close(log: Log): Promise<void> {
    log('  unmounting');
    await this.temp.close();
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

/** Non-zero content, so nothing could be mistaken for a hole. */
const fill = (n: number, seed: number) => Buffer.alloc(n, (seed % 255) + 1);

/** `count` files of `size` bytes, 1024 to a directory. */
function writeFiles(mnt: string, prefix: string, count: number, size: number): void {
  const data = fill(size, count);
  for (let i = 0; i < count; i++) {
    const dir = join(mnt, `${prefix}${Math.floor(i / 1024)}`);
    if (i % 1024 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}`), data);
  }
}

/** One big file, written 1 MiB at a time (as dd bs=1M). */
function writeBig(path: string, size: number): void {
  const chunk = fill(MiB, 7);
  const fd = openSync(path, 'w');
  try {
    for (let off = 0; off < size; off += MiB) writeSync(fd, chunk, 0, Math.min(MiB, size - off), off);
  } finally {
    closeSync(fd);
  }
}

interface StorageRow {
  name: string;
  dataKiB: number;
  tableKB: number;
  sharePct: number;
  nodes: number;
  hugePmd: number;
  hugePud: number;
  pte: number;
  shape?: string;
}

interface BuildRow {
  name: string;
  files: number;
  dataKiB: number;
  buildSeconds: number;
  filesPerSecond: number;
  tableKB: number;
  dropSeconds: number;
}

type Log = (s: string) => void;

async function storage(hostDir: string, name: string, size: string, log: Log,
  prepare: (m: FigureMount) => void, work: (m: FigureMount) => { dataBytes: number; big?: string }): Promise<StorageRow> {
  const m = await FigureMount.create(hostDir, size, log);
  try {
    prepare(m);
    m.setKnob('page_tables_on', 1);
    const before = m.pmemKB();
    const s0 = m.stats();
    log(`  ${name}: writing`);
    const { dataBytes, big } = work(m);
    const shape = big ? m.ppt(big) : undefined;
    const tableKB = m.pmemKB() - before;
    const s1 = m.stats();
    return {
      name,
      dataKiB: dataBytes / KiB,
      tableKB,
      sharePct: (100 * tableKB) / (dataBytes / KiB),
      nodes: s1.tableNodes! - s0.tableNodes!,
      hugePmd: s1.hugePmdEntries! - s0.hugePmdEntries!,
      hugePud: s1.hugePudEntries! - s0.hugePudEntries!,
      pte: s1.pteEntries! - s0.pteEntries!,
      shape: shape ? `level ${shape.level}, ${shape.nodes} nodes` : undefined,
    };
  } finally {
    await m.close(log);
  }
}

/** Cut the pool's free space into unaligned pieces: fill it with 64 KiB files, keep one in 32. */
function fragmentFreeSpace(m: FigureMount, log: Log): void {
  const data = fill(64 * KiB, 3);
  const names: string[] = [];
  log('  fragmenting: filling the pool with 64 KiB files');
  for (let i = 0; ; i++) {
    const dir = join(m.mnt, `junk${Math.floor(i / 1024)}`);
    try {
      if (i % 1024 === 0) mkdirSync(dir);
      writeFileSync(join(dir, `f${i}`), data);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      break;
    }
    names.push(join(dir, `f${i}`));
  }
  log(`  fragmenting: ${names.length} files written; deleting 31 in 32`);
  names.forEach((p, i) => {
    if (i % 32 !== 0) {
      try { unlinkSync(p); } catch { /* the file that hit ENOSPC may be partial or absent */ }
    }
  });
  const kept = names[0]; // i = 0 is kept (unless it was the one that met ENOSPC)
  if (kept) m.ppt(kept.slice(m.mnt.length + 1)); // commit, so the freed blocks can be reused
}

async function buildTime(hostDir: string, name: string, files: number, fileSize: number, log: Log): Promise<BuildRow> {
  const m = await FigureMount.create(hostDir, '2G', log);
  try {
    log(`  ${name}: writing ${files} files with page_tables_on 0`);
    if (files === 1) writeBig(join(m.mnt, 'f'), fileSize);
    else writeFiles(m.mnt, 'd', files, fileSize);
    m.ppt(files === 1 ? 'f' : 'd0/f0'); // commit now, so the timing is the build alone
    log(`  ${name}: echo 1 > page_tables_on`);
    const buildSeconds = seconds(() => m.setKnob('page_tables_on', 1));
    const tableKB = m.pmemKB();
    log(`  ${name}: echo 0 > page_tables_on`);
    const dropSeconds = seconds(() => m.setKnob('page_tables_on', 0));
    return { name, files, dataKiB: (files * fileSize) / KiB, buildSeconds, filesPerSecond: files / buildSeconds, tableKB, dropSeconds };
  } finally {
    await m.close(log);
  }
}


const tableOf = (head: string[], rows: string[][]): string => textTable(head, rows, { rule: true });

async function main(): Promise<void> {
  const all = ['4k', '64k', '1g', '1g-frag', 'build-64m', 'build-64k'];
  const program = new Command()
    .name('ppt-figures')
    .description('page-table storage as a share of data, and the time to build tables for 1 GiB of files, through a mount')
    .option('--host <dir>', 'directory for the temporary pools', tmpdir())
    .option('--only <list>', `comma-separated subset of: ${all.join(',')}`)
    .option('--json', 'print JSON instead of tables')
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .parse();
  const opts = program.opts<{ host: string; only?: string; json?: boolean }>();
  const only = new Set(opts.only ? opts.only.split(',') : all);
  for (const o of only) if (!all.includes(o)) { process.stderr.write(`unknown scenario ${o}\n`); process.exit(2); }
  const hostDir = resolve(opts.host);
  const t0 = Date.now();
  const log: Log = (s) => { if (!opts.json) process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}\n`); };

  const storageRows: StorageRow[] = [];
  const buildRows: BuildRow[] = [];
  const none = () => {};
  if (only.has('4k')) {
    storageRows.push(await storage(hostDir, '1000 × 4 KiB', '1G', log, none, (m) => {
      writeFiles(m.mnt, 'd', 1000, 4 * KiB);
      return { dataBytes: 1000 * 4 * KiB };
    }));
  }
  if (only.has('64k')) {
    storageRows.push(await storage(hostDir, '1000 × 64 KiB', '1G', log, none, (m) => {
      writeFiles(m.mnt, 'd', 1000, 64 * KiB);
      return { dataBytes: 1000 * 64 * KiB };
    }));
  }
  if (only.has('1g')) {
    storageRows.push(await storage(hostDir, '1 × 1 GiB, aligned', '2G', log, none, (m) => {
      writeBig(join(m.mnt, 'big'), GiB);
      return { dataBytes: GiB, big: 'big' };
    }));
  }
  if (only.has('1g-frag')) {
    storageRows.push(await storage(hostDir, '1 × 1 GiB, fragmented', '1280M', log, (m) => fragmentFreeSpace(m, log), (m) => {
      writeBig(join(m.mnt, 'big'), GiB);
      return { dataBytes: GiB, big: 'big' };
    }));
  }
  if (only.has('build-64m')) buildRows.push(await buildTime(hostDir, '16 × 64 MiB', 16, 64 * MiB, log));
  if (only.has('build-64k')) buildRows.push(await buildTime(hostDir, '16384 × 64 KiB', 16384, 64 * KiB, log));

  if (opts.json) {
    process.stdout.write(JSON.stringify({ storage: storageRows, build: buildRows }, null, 2) + '\n');
    return;
  }
  if (storageRows.length) {
    process.stdout.write('\nPage-table storage (PMEM, from kbytes_occupied) as a share of data\n\n');
    process.stdout.write(tableOf(
      ['files', 'data KiB', 'tables KB', 'share', 'nodes', 'huge PMD', 'huge PUD', 'PTE', 'big file'],
      storageRows.map((r) => [r.name, String(r.dataKiB), String(r.tableKB), `${r.sharePct >= 1 ? r.sharePct.toFixed(2) : r.sharePct.toPrecision(2)} %`,
        String(r.nodes), String(r.hugePmd), String(r.hugePud), String(r.pte), r.shape ?? '']),
    ) + '\n');
  }
  if (buildRows.length) {
    process.stdout.write('\nBuilding tables for existing files: echo 1 > .daxvm/page_tables_on (then echo 0)\n\n');
    process.stdout.write(tableOf(
      ['files', 'data KiB', 'echo 1 (s)', 'files/s', 'tables KB', 'echo 0 (s)'],
      buildRows.map((r) => [r.name, String(r.dataKiB), r.buildSeconds.toFixed(3), r.filesPerSecond.toFixed(0), String(r.tableKB), r.dropSeconds.toFixed(3)]),
    ) + '\n');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`ppt-figures: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
