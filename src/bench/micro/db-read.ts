/**
 * `daxvm bench db-read`: a database's reads of one large file (--db-size,
 * default 1 GiB): N accesses of 1 KiB or 4 KiB, in order or at random
 * offsets (seeded, aligned to the access size, the same for every variant),
 * by pread() or out of one mapping of the whole file. Every access copies its
 * bytes into a reused buffer (pread does; a mapping's bytes are copied out as
 * a database copies a record) and sums them, so a mapping's lazy faults are
 * in the figure. The sums of a pass must equal the file's, known from how it
 * was written.
 *
 * The clock covers the accesses only. Opening the file and mapping it (once
 * per pass, as the paper maps once and accesses many times), unmapping and
 * closing are off it and timed aside: the JSON's `untimed_seconds`.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { mmap, MAP_DAXVM } from '../../lib/index.js';
import { native } from '../native.js';
import { hex } from './files.js';
import { sumAdd } from './db-file.js';
import { dbPlan, dbSizeOf, openDbCase } from './db-plan.js';
import type { BenchDef, RunResult, VariantDef } from './types.js';

type DbReadVariant = 'read' | 'mmap' | 'daxvm' | 'native';

const VARIANTS: readonly (VariantDef & { name: DbReadVariant })[] = [
  { name: 'read', description: 'pread() of each access into a reused buffer, through the mount' },
  { name: 'mmap', description: 'one mmap(path) of the file (vanilla: through the mount); each access copied out of it' },
  { name: 'daxvm', needsTables: true, description: 'one MAP_DAXVM mapping of the file (from the pool); each access copied out of it' },
  { name: 'native', native: true, description: 'pread() of the same file in a directory of the host: the ceiling here' },
];

const since = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;

export const dbReadBench: BenchDef = {
  name: 'db-read',
  summary: 'one large file, N reads of 1 KiB or 4 KiB, sequential or random (seeded): pread versus copies out of a mapping',
  variants: VARIANTS,
  baseline: 'read',
  countLabel: 'accesses',
  takes: ['db-size', 'pattern'],
  plan: (o) => dbPlan('db-read', o, o.quick ? 512 : 16384),
  scratchBytes: (_c, o) => dbSizeOf(o),
  async setup(ctx, c) {
    const db = openDbCase(ctx, c, 'db-read');
    let expected = 0n;
    for (const off of db.offsets) expected = sumAdd(expected, db.image.sum(off, c.size));
    const buf = Buffer.allocUnsafe(c.size);
    const len = c.size;
    return {
      expected: hex(expected),
      async run(name): Promise<RunResult> {
        const v = name as DbReadVariant;
        let sum = 0n;
        if (v === 'read' || v === 'native') {
          let t = process.hrtime.bigint();
          const fd = openSync(v === 'native' ? db.native : db.mount, 'r');
          const open = since(t);
          try {
            t = process.hrtime.bigint();
            for (const off of db.offsets) {
              if (readSync(fd, buf, 0, len, off) !== len) throw new Error(`db-read: a short read at ${off}`);
              sum = sumAdd(sum, native.sum64(buf, len));
            }
            const seconds = since(t);
            return { seconds, bytes: c.count * len, ops: c.count, checksum: hex(sum), untimed: { open } };
          } finally {
            closeSync(fd);
          }
        }
        let t = process.hrtime.bigint();
        const m = mmap(db.mount, { flags: v === 'daxvm' ? MAP_DAXVM : 0 });
        const map = since(t);
        let seconds = 0;
        try {
          if (v === 'daxvm' && m.mode === 'vanilla') {
            return { seconds: map, bytes: 0, ops: 0, unavailable: `MAP_DAXVM fell back to the vanilla path: ${m.fallbackReason ?? 'no reason given'}` };
          }
          const mem = m.buffer;
          t = process.hrtime.bigint();
          for (const off of db.offsets) {
            mem.copy(buf, 0, off, off + len);
            sum = sumAdd(sum, native.sum64(buf, len));
          }
          seconds = since(t);
        } finally {
          t = process.hrtime.bigint();
          m.unmap();
        }
        const unmap = since(t);
        return { seconds, bytes: c.count * len, ops: c.count, checksum: hex(sum), modes: { [m.mode]: 1 }, untimed: { map, unmap } };
      },
      async close() {
        // The file is the run's, shared by its cases: it goes with the scratch directory at the end.
      },
    };
  },
};
