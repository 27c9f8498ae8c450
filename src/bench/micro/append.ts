/**
 * `daxvm bench append`: N times (the paper: 512), unlink a file and create it
 * again with S bytes, by write() or by extending it and copying the bytes in
 * through a mapping; with the `zeroout_blocks` knob 1 and 0 (a case
 * parameter: the knob is set for the whole case, so the background zeroer of
 * 0 has the case to work in).
 *
 * Durability: every variant makes each file durable before it goes on, as a
 * program on a PMem file system must: the bytes (fsync, msync, persist) and
 * the file's size and blocks (fsync). The clock covers the whole loop, from
 * the first unlink to the last close. After the clock, the last file is read
 * back (a fresh open) and its sum must be the data's: a variant that did not
 * write what it should cannot post a figure.
 *
 * The mapping variants extend the new file with fallocate(2) (mode 0, the
 * native shim's: Node has none), as on DaxVM: a mapping from the pool needs
 * a block behind every page (a hole sends it to the vanilla path), and the
 * daemon gives pre-zeroed blocks when `zeroout_blocks` is 0, else zeroes
 * them as it allocates. On a mount without fallocate (EOPNOTSUPP, probed once
 * per case) they fall back: `mmap` extends by ftruncate (the vanilla mapping
 * fills the holes through the page cache), the MAP_DAXVM variants write S
 * zero bytes. The JSON's `method` says which was used.
 */
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { mmap, MAP_DAXVM, MAP_DAXVM_NOSYNC } from '../../lib/index.js';
import { native } from '../native.js';
import { CliError, EXIT } from '../../core/errors.js';
import { hex } from './files.js';
import { MiB, seededBytes } from './db-file.js';
import { sizesByThreads } from './options.js';
import type { BenchContext, BenchDef, RunResult, VariantDef } from './types.js';

const KiB = 1024;
const CHUNK = MiB;

type AppendVariant = 'write' | 'mmap' | 'daxvm' | 'daxvm-nosync' | 'native';

const VARIANTS: readonly (VariantDef & { name: AppendVariant })[] = [
  { name: 'write', description: 'unlink, create, write() of S bytes in calls of at most 1 MiB, fsync, close' },
  { name: 'mmap', description: 'unlink, create, fallocate to S (else ftruncate), mmap(path, { prot: "rw" }) (vanilla: through the mount), copy in, msync, unmap, fsync, close' },
  { name: 'daxvm', needsTables: true,
    description: 'unlink, create, fallocate to S (else a write() of S zero bytes), MAP_DAXVM mapping, copy in, msync() (the written pages), unmap, fsync, close' },
  { name: 'daxvm-nosync', needsTables: true,
    description: 'the same with MAP_DAXVM_NOSYNC: no dirty tracking, persist(0, S) is the flush' },
  { name: 'native', native: true, description: 'the same as write, in a directory of the host: the ceiling here' },
];

/** Files per pass by default: the paper's 512 takes far too long here with an fsync per file, so 64 (fewer of the big ones). */
const defaultCount = (size: number): number => Math.min(64, Math.max(2, Math.floor(32 * MiB / size)));

/** Whether the mount preallocates: fallocate(2) of 4 KiB on a probe file; EOPNOTSUPP is a no, any other error a failure of the bench. */
function probeFallocate(dir: string): boolean {
  const probe = join(dir, 'fallocate-probe');
  const fd = openSync(probe, 'w');
  try {
    native.fallocate(fd, 0, 0, 4096);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EOPNOTSUPP') return false;
    throw err;
  } finally {
    closeSync(fd);
    rmSync(probe, { force: true });
  }
}

function writeAll(fd: number, data: Buffer, size: number): void {
  for (let off = 0; off < size;) {
    off += writeSync(fd, data, off % data.length, Math.min(CHUNK, size - off, data.length - (off % data.length)), off);
  }
}

/** Create `path` (unlinked first) holding `data`, durable; returns how the mapping variants mapped. */
function createOnce(v: AppendVariant, path: string, data: Buffer, zeros: Buffer, fallocate: boolean): { mode?: string; tracking?: string; fallback?: string } {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const size = data.length;
  const fd = openSync(path, v === 'write' || v === 'native' ? 'w' : 'w+');
  try {
    if (v === 'write' || v === 'native') {
      writeAll(fd, data, size);
      fsyncSync(fd);
      return {};
    }
    if (fallocate) native.fallocate(fd, 0, 0, size);
    else if (v === 'mmap') ftruncateSync(fd, size);
    else writeAll(fd, zeros, size);
    const m = mmap(path, { prot: 'rw', flags: v === 'mmap' ? 0 : v === 'daxvm' ? MAP_DAXVM : MAP_DAXVM | MAP_DAXVM_NOSYNC });
    try {
      if (v !== 'mmap' && m.mode === 'vanilla') return { fallback: `MAP_DAXVM fell back to the vanilla path: ${m.fallbackReason ?? 'no reason given'}` };
      data.copy(m.buffer);
      if (v === 'daxvm-nosync') m.persist(0, size);
      else m.msync();
    } finally {
      m.unmap();
    }
    fsyncSync(fd);
    return { mode: m.mode, tracking: m.tracking };
  } finally {
    closeSync(fd);
  }
}

export const appendBench: BenchDef = {
  name: 'append',
  summary: 'N times: unlink, create a file of S bytes by write() or extend + map + copy + unmap, durable; zeroout_blocks 1 and 0',
  variants: VARIANTS,
  baseline: 'write',
  countLabel: 'files',
  plan: (o) => {
    if (o.threads && (o.threads.length > 1 || o.threads[0] !== 1)) throw new CliError('bench append runs on one thread', EXIT.USAGE);
    const cases = sizesByThreads(o, {
      sizes: [4 * KiB, 64 * KiB, MiB, 16 * MiB],
      quickSizes: [4 * KiB, MiB],
      threads: [1],
      min: 1,
      max: 1024 * MiB,
      count: (size) => (o.quick ? 4 : defaultCount(size)),
    });
    return cases.flatMap((c) => [1, 0].map((z) => ({ ...c, params: { zeroout_blocks: z } })));
  },
  // The file being created, the one unlinked before it (its blocks are freed at the commit of the fsync), and room.
  scratchBytes: (c) => 3 * c.size + 64 * MiB,
  async setup(ctx: BenchContext, c) {
    const zeroout = Number(c.params?.zeroout_blocks ?? 1);
    ctx.setKnob('zeroout_blocks', zeroout);
    ctx.setKnob('msync', 1); // daxvm's msync() must write back (0 would make every mapping nosync)
    const fallocate = probeFallocate(ctx.scratch);
    ctx.record('fallocate_on_mount', fallocate ? 'works' : 'fails: EOPNOTSUPP');
    ctx.record('extend_mmap', fallocate ? 'fallocate (mode 0)' : 'ftruncate (fallocate: EOPNOTSUPP)');
    ctx.record('extend_daxvm', fallocate
      ? 'fallocate (mode 0): blocks the background zeroer zeroed when zeroout_blocks is 0, else zeroed by the daemon as it allocates'
      : 'write() of S zero bytes (fallocate: EOPNOTSUPP; allocates the blocks a MAP_DAXVM mapping needs)');
    ctx.record('durability', 'every file durable before the next: fsync (write, native); msync or persist, then fsync (mappings)');
    const name = `append-${c.size}-z${zeroout}`;
    const dirs = { mount: join(ctx.scratch, name), native: ctx.nativeDir ? join(ctx.nativeDir, name) : '' };
    mkdirSync(dirs.mount);
    if (dirs.native) mkdirSync(dirs.native);
    const data = seededBytes(c.size, ctx.options.seed);
    const zeros = Buffer.alloc(Math.min(c.size, CHUNK));
    return {
      expected: hex(native.sum64(data)),
      async run(name): Promise<RunResult> {
        const v = name as AppendVariant;
        const path = join(v === 'native' ? dirs.native : dirs.mount, 'f');
        const modes: Record<string, number> = {};
        let tracking: string | undefined;
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < c.count; i++) {
          const got = createOnce(v, path, data, zeros, fallocate);
          if (got.fallback) return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, bytes: i * c.size, ops: i, unavailable: got.fallback };
          if (got.mode) modes[got.mode] = (modes[got.mode] ?? 0) + 1;
          tracking = got.tracking;
        }
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        if (v === 'daxvm' && tracking) ctx.record('daxvm_msync_tracking', tracking);
        // Off the clock: the last file, through a fresh open, must hold the data.
        const back = readFileSync(path);
        const checksum = back.length === c.size ? hex(native.sum64(back)) : `length ${back.length}, not ${c.size}`;
        return { seconds, bytes: c.count * c.size, ops: c.count, checksum, modes };
      },
      async close() {
        rmSync(dirs.mount, { recursive: true, force: true });
        if (dirs.native) rmSync(dirs.native, { recursive: true, force: true });
      },
    };
  },
};
