/**
 * `daxvm bench preload`: the read bench's method (N files of size S: open,
 * read() or mmap, sum in 8-byte words, munmap, close) run by a C program
 * (bench/preload/read-files.c, compiled here with the system's cc), so that
 * the preload library's MAP_DAXVM is measured as an unmodified C program
 * gets it, beside read() and a plain mmap through the mount and read() and
 * mmap of the same files in a host directory. One process per pass; the
 * program's own clock runs from the first open to the last close.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT } from '../../core/errors.js';
import { packageRoot, preloadLibraryPath } from '../../core/paths.js';
import { sizesByThreads } from './options.js';
import { writeFileSet } from './files.js';
import type { BenchDef, RunResult, VariantDef } from './types.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const BUDGET = 16 * MiB;
const QUICK_BUDGET = 2 * MiB;
const MAP_DAXVM = 0x400000;

interface CVariant extends VariantDef {
  mode: 'read' | 'mmap';
  flags: number;
  preload?: boolean;
}

const VARIANTS: readonly CVariant[] = [
  { name: 'read', mode: 'read', flags: 0, description: 'C: open, read() the whole file into a reused buffer, sum, close (through the mount)' },
  { name: 'mmap', mode: 'mmap', flags: 0, description: 'C: a plain mmap(MAP_SHARED) through the mount, no preload; sum, munmap, close' },
  { name: 'daxvm', mode: 'mmap', flags: MAP_DAXVM, preload: true, needsTables: true,
    description: 'C with libdaxvm-preload.so: mmap(MAP_SHARED | MAP_DAXVM), straight out of the pool' },
  { name: 'native', mode: 'read', flags: 0, native: true, description: 'C: read() of the same files in a directory of the host (--native)' },
  { name: 'native-mmap', mode: 'mmap', flags: 0, native: true, description: 'C: a plain mmap of the same files in the host directory' },
];

/** The C program, compiled into dir (the bench's host directory). */
function compile(dir: string): string {
  const src = join(packageRoot(), 'bench', 'preload', 'read-files.c');
  const exe = join(dir, 'read-files');
  const r = spawnSync('cc', ['-O3', '-o', exe, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    throw new CliError(`cannot compile ${src}: ${r.error?.message ?? r.stderr.trim()}`, EXIT.FAILURE, 'the system compiler (cc) is needed: node scripts/system-deps.cjs --check');
  }
  return exe;
}

/** The preload's DAXVM_DEBUG lines of a pass: how each mmap went, and the first fallback's reason. */
function decisions(stderr: string): { modes: Record<string, number>; fallback?: string } {
  const modes: Record<string, number> = {};
  let fallback: string | undefined;
  for (const line of stderr.split('\n')) {
    const m = / mmap .* -> (attached|stitched|kernel)( \(ephemeral heap\))?( \((.*)\):)?/.exec(line);
    if (!m) continue;
    modes[m[1]!] = (modes[m[1]!] ?? 0) + 1;
    if (m[1] === 'kernel') fallback ??= `the preload fell back to the kernel's mmap: ${m[4] ?? line}`;
  }
  return fallback === undefined ? { modes } : { modes, fallback };
}

export const preloadBench: BenchDef = {
  name: 'preload',
  summary: 'the read bench as a C program: read(), mmap, and mmap(MAP_DAXVM) with the preload library (4 KiB to 1 GiB)',
  variants: VARIANTS,
  baseline: 'read',
  countLabel: 'files',
  plan: (o) => {
    if (o.threads && (o.threads.length > 1 || o.threads[0] !== 1)) throw new CliError('bench preload runs on one thread', EXIT.USAGE);
    return sizesByThreads(o, {
      sizes: [4 * KiB, 16 * KiB, 64 * KiB, MiB, 16 * MiB, 256 * MiB, GiB],
      quickSizes: [4 * KiB, 64 * KiB, MiB],
      threads: [1],
      min: 8,
      max: 4 * GiB,
      count: (size) => Math.min(o.quick ? 32 : 10_000, Math.max(1, Math.floor((o.quick ? QUICK_BUDGET : BUDGET) / size))),
    });
  },
  async setup(ctx, c) {
    if (c.size % 8 !== 0) throw new CliError('bench preload sums 8-byte words: sizes must be multiples of 8', EXIT.USAGE);
    const lib = preloadLibraryPath();
    const exe = compile(ctx.nativeDir);
    const wantNative = ctx.options.variants.some((v) => VARIANTS.find((x) => x.name === v)?.native);
    const set = writeFileSet({
      mountDir: ctx.scratch, ...(wantNative ? { nativeDir: ctx.nativeDir } : {}),
      name: `preload-${c.size}`, count: c.count, size: c.size, seed: ctx.options.seed,
    });
    const lists = { mount: join(ctx.nativeDir, `list-mount-${c.size}`), native: join(ctx.nativeDir, `list-native-${c.size}`) };
    writeFileSync(lists.mount, set.mount.join('\n') + '\n');
    if (wantNative) writeFileSync(lists.native, set.native.join('\n') + '\n');
    ctx.record('program', 'bench/preload/read-files.c, cc -O3; one process per pass, timed inside from the first open to the last close');
    let modes: Record<string, number> = {};
    return {
      expected: set.checksum,
      unavailable: (name) => (VARIANTS.find((v) => v.name === name)?.preload && !existsSync(lib)
        ? `the preload library is not built (${lib}): npm install` : undefined),
      async run(name, pass): Promise<RunResult> {
        const v = VARIANTS.find((x) => x.name === name)!;
        const env: NodeJS.ProcessEnv = { ...process.env };
        delete env.LD_PRELOAD;
        delete env.DAXVM_DEBUG;
        // The warm-up pass says how each mmap went (a line each); the timed ones run quiet.
        if (v.preload) Object.assign(env, { LD_PRELOAD: lib }, pass.warmup ? { DAXVM_DEBUG: '1' } : {});
        const r = spawnSync(exe, [v.mode, String(v.flags), v.native ? lists.native : lists.mount, String(c.size)],
          { env, encoding: 'utf8', maxBuffer: 256 * MiB });
        if (r.status !== 0) throw new Error(`read-files ${name} failed (${r.error?.message ?? `exit ${r.status} ${r.signal ?? ''}`}): ${r.stderr.slice(-2000)}`);
        const [seconds, bytes, files, checksum] = r.stdout.trim().split(' ');
        if (v.preload && pass.warmup) {
          const d = decisions(r.stderr);
          if (d.fallback) return { seconds: Number(seconds), bytes: Number(bytes), ops: Number(files), unavailable: d.fallback };
          modes = d.modes;
        }
        return { seconds: Number(seconds), bytes: Number(bytes), ops: Number(files), checksum: checksum!, ...(v.preload ? { modes } : {}) };
      },
      async close() {
        set.remove();
      },
    };
  },
};
