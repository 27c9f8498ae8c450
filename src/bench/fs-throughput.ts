#!/usr/bin/env node
/**
 * File system throughput through the mount, next to the same on the host
 * directory that holds the pool (the ceiling on this machine):
 *
 * - sequential write of a 1 GiB file with `dd bs=1M conv=fsync`
 * - sequential read of it with `dd bs=1M`, after dropping the page cache
 * - open+read+close of 2000 files of 16 KiB (cold after dropping caches, then warm)
 *
 *   npm run bench:fs -- [--mnt DIR] [--host DIR] [--runs N] [--json]
 *
 * Without --mnt it makes a temporary 2 GiB pool in the host directory (default:
 * the OS temp dir), mounts it with `daxvm mount -f` in a child process, runs,
 * unmounts and removes it. With --mnt the host directory defaults to the one
 * holding that mount's pool (read from MNT/.daxvm/pool). A benchmark, not a
 * test: it reports, it never judges. MB/s are 10^6 bytes per second, as dd's.
 */
import { spawnSync } from 'node:child_process';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { textTable } from '../core/output.js';
import { median as med } from './micro/stats.js';
import { TempMount } from '../core/temp-mount.js';

const MB = 1e6;

interface Figures {
  seqWriteMBs: number;
  seqReadMBs: number;
  smallColdFilesPerS: number;
  smallWarmFilesPerS: number;
}

interface Result {
  mount: Figures;
  host: Figures;
  mountDir: string;
  hostDir: string;
  fileBytes: number;
  smallFiles: number;
  smallFileBytes: number;
  cachesDropped: boolean;
  /** Each figure is the median of this many runs. */
  runs: number;
  notes: string[];
}

function median(all: Figures[]): Figures {
  return {
    seqWriteMBs: med(all.map((f) => f.seqWriteMBs)),
    seqReadMBs: med(all.map((f) => f.seqReadMBs)),
    smallColdFilesPerS: med(all.map((f) => f.smallColdFilesPerS)),
    smallWarmFilesPerS: med(all.map((f) => f.smallWarmFilesPerS)),
  };
}

const notes: string[] = [];

function sh(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

function must(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.out.trim()}`);
}

let dropWarned = false;
/** sync, then drop the page cache when we may; false when we could not. */
function dropCaches(): boolean {
  spawnSync('sync');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch (e) {
    if (!dropWarned) {
      dropWarned = true;
      notes.push(`could not drop the page cache (${(e as NodeJS.ErrnoException).code ?? e}): reads may come from the cache; run as root for cold reads`);
    }
    return false;
  }
}

function timed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function measure(dir: string, fileBytes: number, nSmall: number, smallBytes: number, log: (s: string) => void): Figures {
  const work = mkdtempSync(join(dir, 'daxvm-bench-'));
  try {
    const big = join(work, 'seq');
    const count = Math.round(fileBytes / (1 << 20));
    log(`  dd write ${count} MiB`);
    const w = timed(() => must('dd', ['if=/dev/zero', `of=${big}`, 'bs=1M', `count=${count}`, 'conv=fsync', 'status=none']));
    dropCaches();
    log(`  dd read ${count} MiB`);
    const r = timed(() => must('dd', [`if=${big}`, 'of=/dev/null', 'bs=1M', 'status=none']));
    rmSync(big);

    log(`  ${nSmall} small files`);
    const small = join(work, 'small');
    mkdirSync(small);
    const content = Buffer.alloc(smallBytes, 0x5a);
    for (let i = 0; i < nSmall; i++) writeFileSync(join(small, `f${i}`), content);
    const buf = Buffer.alloc(smallBytes);
    const readAll = () => {
      for (let i = 0; i < nSmall; i++) {
        const fd = openSync(join(small, `f${i}`), 'r');
        let got = 0;
        while (got < smallBytes) {
          const n = readSync(fd, buf, got, smallBytes - got, got);
          if (n <= 0) break;
          got += n;
        }
        closeSync(fd);
        if (got !== smallBytes) throw new Error(`short read of ${small}/f${i}: ${got} bytes`);
      }
    };
    dropCaches();
    const cold = timed(readAll);
    const warm = timed(readAll);
    return {
      seqWriteMBs: fileBytes / MB / w,
      seqReadMBs: fileBytes / MB / r,
      smallColdFilesPerS: nSmall / cold,
      smallWarmFilesPerS: nSmall / warm,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function table(res: Result): string {
  const size = res.fileBytes >= 2 ** 30 ? `${res.fileBytes / 2 ** 30} GiB` : `${res.fileBytes / 2 ** 20} MiB`;
  const rows: Array<[string, string, number, number]> = [
    [`sequential write ${size}, dd bs=1M conv=fsync`, 'MB/s', res.mount.seqWriteMBs, res.host.seqWriteMBs],
    [`sequential read ${size}, dd bs=1M${res.cachesDropped ? ' (cold)' : ''}`, 'MB/s', res.mount.seqReadMBs, res.host.seqReadMBs],
    [`open+read+close ${res.smallFiles} x ${res.smallFileBytes / 1024} KiB${res.cachesDropped ? ' (cold)' : ''}`, 'files/s', res.mount.smallColdFilesPerS, res.host.smallColdFilesPerS],
    [`open+read+close ${res.smallFiles} x ${res.smallFileBytes / 1024} KiB (warm)`, 'files/s', res.mount.smallWarmFilesPerS, res.host.smallWarmFilesPerS],
  ];
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const head = ['', 'unit', 'daxvm mount', 'host dir', 'mount/host'];
  const body = rows.map(([name, unit, m, h]) => [name, unit, fmt(m), fmt(h), (m / h).toFixed(2)]);
  const foot = res.runs > 1 ? [`(medians of ${res.runs} runs, mount and host alternating)`] : [];
  return [textTable(head, body), ...foot].join('\n');
}

async function main(): Promise<void> {
  const program = new Command()
    .name('fs-throughput')
    .description('sequential and small-file throughput through a daxvm mount vs the host directory')
    .option('--mnt <dir>', 'a mounted daxvm file system (default: a temporary 2 GiB pool, mounted for the run)')
    .option('--host <dir>', 'the host directory to compare with (default: where the pool lives)')
    .option('--json', 'print JSON instead of a table')
    .option('--size-mib <n>', 'size of the sequential file in MiB', '1024')
    .option('--files <n>', 'number of small files', '2000')
    .option('--runs <n>', 'repeat, mount and host alternating, and report medians', '1')
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
    .parse();
  const opts = program.opts<{ mnt?: string; host?: string; json?: boolean; sizeMib: string; files: string; runs: string }>();
  const fileBytes = Number(opts.sizeMib) * 2 ** 20;
  const nSmall = Number(opts.files);
  const runs = Number(opts.runs);
  if (!(fileBytes > 0) || !(nSmall > 0) || !Number.isInteger(runs) || runs < 1) {
    program.outputHelp();
    process.exit(2);
  }
  const log = (s: string) => {
    if (!opts.json) process.stderr.write(s + '\n');
  };

  let hostDir = opts.host ? resolve(opts.host) : undefined;
  let temp: TempMount | undefined;
  let mnt: string;
  if (opts.mnt) {
    mnt = resolve(opts.mnt);
    if (!hostDir) {
      const poolFile = join(mnt, '.daxvm', 'pool');
      if (existsSync(poolFile)) hostDir = dirname(readFileSync(poolFile, 'utf8').trim());
      else {
        hostDir = tmpdir();
        notes.push(`${poolFile} not found: comparing with ${hostDir}`);
      }
    }
  } else {
    hostDir ??= tmpdir();
    log(`mkfs and mount a 2 GiB pool in ${hostDir}`);
    temp = await TempMount.create(hostDir, '2G', 'daxvm-bench-pool-');
    log(`mounted at ${temp.mnt}`);
    mnt = temp.mnt;
  }
  // The harness's exit hook kills the daemon, detaches the mount and removes the pool.
  process.once('SIGINT', () => process.exit(130));
  try {
    const cachesDropped = dropCaches();
    const mountRuns: Figures[] = [];
    const hostRuns: Figures[] = [];
    for (let i = 0; i < runs; i++) {
      const tag = runs > 1 ? ` (run ${i + 1} of ${runs})` : '';
      log(`daxvm mount ${mnt}${tag}`);
      mountRuns.push(measure(mnt, fileBytes, nSmall, 16384, log));
      log(`host dir ${hostDir}${tag}`);
      hostRuns.push(measure(hostDir, fileBytes, nSmall, 16384, log));
    }
    const res: Result = {
      mount: median(mountRuns), host: median(hostRuns), mountDir: mnt, hostDir, fileBytes,
      smallFiles: nSmall, smallFileBytes: 16384, cachesDropped, runs, notes,
    };
    if (opts.json) process.stdout.write(JSON.stringify(res, null, 2) + '\n');
    else {
      process.stdout.write(table(res) + '\n');
      for (const n of notes) process.stdout.write(`note: ${n}\n`);
    }
  } finally {
    if (temp) await temp.close();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`fs-throughput: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
