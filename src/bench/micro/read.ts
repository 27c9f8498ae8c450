/**
 * `daxvm bench read`: N files of size S; for each, open, get the bytes in by
 * read() or a mapping, sum them in 8-byte words, unmap, close. MiB/s and
 * files/s over the wall time of the whole pass (open of the first file to
 * close of the last), not over summed per-file times.
 */
import { CliError, EXIT } from '../../core/errors.js';
import { sizesByThreads } from './options.js';
import { hex, writeFileSet } from './files.js';
import { FILE_VARIANTS, passOverFiles, settle, type FileVariantName } from './variants.js';
import type { BenchDef } from './types.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Bytes per case: files = min(10 000, this / size), at least one. */
const BUDGET = 16 * MiB;
const QUICK_BUDGET = 2 * MiB;

const variantNames: FileVariantName[] = ['read', 'mmap', 'populate', 'daxvm', 'native', 'native-mmap'];

export const readBench: BenchDef = {
  name: 'read',
  summary: 'N files of size S: open, read or map, sum in 8-byte words, unmap, close (4 KiB to 1 GiB)',
  variants: variantNames.map((n) => FILE_VARIANTS[n]),
  baseline: 'read',
  countLabel: 'files',
  plan: (o) => {
    if (o.threads && (o.threads.length > 1 || o.threads[0] !== 1)) {
      throw new CliError('bench read runs on one thread', EXIT.USAGE, 'for worker threads, use daxvm bench mt --threads ...');
    }
    return sizesByThreads(o, {
      sizes: [4 * KiB, 16 * KiB, 64 * KiB, MiB, 16 * MiB, 256 * MiB, GiB],
      quickSizes: [4 * KiB, 64 * KiB, MiB],
      threads: [1],
      min: 1,
      max: 2 * GiB - 1, // one Buffer, and mmap-io's 32-bit sizes
      count: (size) => Math.min(o.quick ? 32 : 10_000, Math.max(1, Math.floor((o.quick ? QUICK_BUDGET : BUDGET) / size))),
    });
  },
  async setup(ctx, c) {
    const wantNative = ctx.options.variants.some((v) => FILE_VARIANTS[v as FileVariantName]?.native);
    const set = writeFileSet({
      mountDir: ctx.scratch, ...(wantNative ? { nativeDir: ctx.nativeDir } : {}),
      name: `read-${c.size}`, count: c.count, size: c.size, seed: ctx.options.seed,
    });
    ctx.debug('wrote %d files of %d bytes, checksum %s', c.count, c.size, set.checksum);
    let buf: Buffer | undefined; // for the read() variants, once
    return {
      expected: set.checksum,
      async run(name) {
        const v = FILE_VARIANTS[name as FileVariantName];
        const paths = v.native ? set.native : set.mount;
        if (v.op.kind === 'read') buf ??= Buffer.allocUnsafe(c.size);
        const t0 = process.hrtime.bigint();
        const out = passOverFiles(v.op, paths, c.size, buf);
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        settle(v.op);
        if (out.fallback) return { seconds, bytes: out.bytes, ops: out.ops, unavailable: out.fallback };
        return { seconds, bytes: out.bytes, ops: out.ops, checksum: hex(out.sum), modes: out.modes };
      },
      async close() {
        set.remove();
      },
    };
  },
};
