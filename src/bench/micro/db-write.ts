/**
 * `daxvm bench db-write`: a database's writes into one large file
 * (--db-size, default 1 GiB): N writes of 1 KiB or 4 KiB, in order or at
 * random offsets (seeded, aligned, the same for every variant), by pwrite()
 * or copied into one mapping of the whole file, made durable as a database
 * makes its commits durable: after every write by default (--sync-every N:
 * after every N; 0: once at the end of the pass). Every pass ends durable.
 *
 * What "durable" is per variant: pwrite + fdatasync (write, native); for a
 * mapping, after one write msync of its range, after several msync() of the
 * whole mapping (the mapping finds its dirty pages: the kernel's page cache
 * for the vanilla path, DaxVM's dirty tracking for MAP_DAXVM); in nosync mode
 * (MAP_DAXVM_NOSYNC) nothing tracks, and the program persists each range it
 * wrote.
 *
 * Each pass writes records of its own (a word stamped with the pass), so the
 * check after the clock tells this pass's bytes from the last one's: every
 * offset written is read back through a fresh open and must hold the last
 * record written there. The clock covers the writes and syncs; opening,
 * mapping, unmapping and the check are off it (mapping and unmapping timed
 * aside: `untimed_seconds` in the JSON).
 */
import { closeSync, fdatasyncSync, openSync, readSync, writeSync } from 'node:fs';
import { mmap, MAP_DAXVM, MAP_DAXVM_NOSYNC, type Mapping } from '../../lib/index.js';
import { native } from '../native.js';
import { hex } from './files.js';
import { MiB, sumAdd, sumSub } from './db-file.js';
import { dbPlan, dbSizeOf, openDbCase } from './db-plan.js';
import type { BenchDef, RunResult, VariantDef } from './types.js';

type DbWriteVariant = 'write' | 'mmap' | 'daxvm' | 'daxvm-nosync' | 'native';

const VARIANTS: readonly (VariantDef & { name: DbWriteVariant })[] = [
  { name: 'write', description: 'pwrite() of each record through the mount, fdatasync per --sync-every' },
  { name: 'mmap', description: 'records copied into one mmap(path, { prot: "rw" }) (vanilla: through the mount), msync per --sync-every' },
  { name: 'daxvm', needsTables: true, description: 'records copied into one MAP_DAXVM mapping, msync per --sync-every (dirty tracking finds the pages)' },
  { name: 'daxvm-nosync', needsTables: true, description: 'the same with MAP_DAXVM_NOSYNC: no tracking, persist() of each range written, per --sync-every' },
  { name: 'native', native: true, description: 'pwrite() + fdatasync of the same file in a directory of the host: the ceiling here' },
];

/** Odd: a pass's stamp differs from every other pass's, and so does any multiple of the difference below 2^64. */
const GOLDEN = 0x9e3779b97f4a7c15n;
const MASK = (1n << 64n) - 1n;
const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

/** Writes per pass: each sync costs a flush of the host's disk, so few when every write syncs. */
const defaultCount = (quick: boolean, syncEvery: number): number =>
  quick ? 8 : syncEvery === 0 ? 16384 : Math.min(16384, 256 * syncEvery);

function syncMapping(m: Mapping, nosync: boolean, offsets: Float64Array, from: number, to: number, len: number): void {
  if (nosync) {
    for (let k = from; k <= to; k++) m.persist(offsets[k]!, len);
  } else if (from === to) {
    m.msync(offsets[from]!, len);
  } else {
    m.msync();
  }
}

export const dbWriteBench: BenchDef = {
  name: 'db-write',
  summary: 'one large file, N writes of 1 KiB or 4 KiB, sequential or random (seeded), durable per --sync-every: pwrite versus a mapping',
  variants: VARIANTS,
  baseline: 'write',
  countLabel: 'accesses',
  takes: ['db-size', 'pattern', 'sync-every'],
  plan: (o) => dbPlan('db-write', o, defaultCount(o.quick, o.syncEvery ?? 1)),
  scratchBytes: (_c, o) => dbSizeOf(o),
  async setup(ctx, c) {
    const db = openDbCase(ctx, c, 'db-write');
    const syncEvery = ctx.options.syncEvery ?? 1;
    ctx.setKnob('msync', 1); // daxvm's msync() must write back (0 would make every mapping nosync)
    ctx.record('sync_every', syncEvery);
    const len = c.size;
    const base = db.image.base;
    // What the file must hold after a pass: at each offset, the last record written there.
    const last = new Map<number, number>();
    db.offsets.forEach((off, i) => last.set(off, i));
    const finals = [...last];
    // Record i is the pattern's bytes from (i * len) mod 1 MiB with its first word the pass's stamp; the check leaves the stamp out.
    const at = (i: number): number => (i * len) % MiB;
    let expected = 0n;
    for (const [, i] of finals) expected = sumAdd(expected, sumSub(native.sum64(base.subarray(at(i), at(i) + len)), base.readBigUInt64LE(at(i))));
    const rec = Buffer.allocUnsafe(len);
    const back = Buffer.allocUnsafe(len);
    let pass = 0;

    /** Off the clock: every offset written, read back through a fresh open; the word sum less the stamps. */
    const check = (path: string, stamp: bigint): string => {
      const fd = openSync(path, 'r');
      try {
        let sum = 0n;
        for (const [off] of finals) {
          if (readSync(fd, back, 0, len, off) !== len) return `short read at ${off}`;
          sum = sumAdd(sum, sumSub(native.sum64(back, len), stamp));
        }
        return hex(sum);
      } finally {
        closeSync(fd);
      }
    };

    return {
      expected: hex(expected),
      async run(name): Promise<RunResult> {
        const v = name as DbWriteVariant;
        const stamp = (BigInt(++pass) * GOLDEN) & MASK;
        const fill = (i: number): Buffer => {
          base.copy(rec, 0, at(i), at(i) + len);
          rec.writeBigUInt64LE(stamp, 0);
          return rec;
        };
        const path = v === 'native' ? db.native : db.mount;
        const count = c.count;
        const due = (i: number): boolean => syncEvery > 0 && (i + 1) % syncEvery === 0;
        if (v === 'write' || v === 'native') {
          const fd = openSync(path, 'r+');
          let seconds: number;
          try {
            const t = process.hrtime.bigint();
            for (let i = 0; i < count; i++) {
              if (writeSync(fd, fill(i), 0, len, db.offsets[i]!) !== len) throw new Error(`db-write: a short write at ${db.offsets[i]}`);
              if (due(i)) fdatasyncSync(fd);
            }
            if (!due(count - 1)) fdatasyncSync(fd);
            seconds = since(t);
          } finally {
            closeSync(fd);
          }
          return { seconds, bytes: count * len, ops: count, checksum: check(path, stamp) };
        }
        let t = process.hrtime.bigint();
        const nosync = v === 'daxvm-nosync';
        const m = mmap(path, { prot: 'rw', flags: v === 'mmap' ? 0 : nosync ? MAP_DAXVM | MAP_DAXVM_NOSYNC : MAP_DAXVM });
        const map = since(t);
        let seconds = 0;
        try {
          if (v !== 'mmap' && m.mode === 'vanilla') {
            return { seconds: map, bytes: 0, ops: 0, unavailable: `MAP_DAXVM fell back to the vanilla path: ${m.fallbackReason ?? 'no reason given'}` };
          }
          if (v === 'daxvm') ctx.record('daxvm_msync_tracking', m.tracking);
          const mem = m.buffer;
          t = process.hrtime.bigint();
          let from = 0;
          for (let i = 0; i < count; i++) {
            fill(i).copy(mem, db.offsets[i]!);
            if (due(i)) {
              syncMapping(m, nosync, db.offsets, from, i, len);
              from = i + 1;
            }
          }
          if (from < count) syncMapping(m, nosync, db.offsets, from, count - 1, len);
          seconds = since(t);
        } finally {
          t = process.hrtime.bigint();
          m.unmap();
        }
        const unmap = since(t);
        return { seconds, bytes: count * len, ops: count, checksum: check(path, stamp), modes: { [m.mode]: 1 }, untimed: { map, unmap } };
      },
      async close() {
        // The file is the run's, shared by its cases: it goes with the scratch directory at the end.
      },
    };
  },
};
