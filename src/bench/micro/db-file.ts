/**
 * The data of the write-side benches: seeded random bytes (pure-rand's
 * xoroshiro128+), the access offsets of the database benches, and their one
 * large file: a seeded 1 MiB pattern repeated, each MiB stamped with its own
 * offset in its first word so that no two MiB are alike. Every byte of the
 * file is known without reading it back, so the sum of any access can be
 * checked against a reference no variant produced.
 */
import { closeSync, existsSync, fsyncSync, openSync, statSync, writeSync } from 'node:fs';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { native } from '../native.js';
import type { AccessPattern } from './types.js';

export const MiB = 1024 * 1024;
const MASK = (1n << 64n) - 1n;

/** Word-sum arithmetic, wrapping at 2^64 (as the checksums of files.ts). */
export const sumAdd = (a: bigint, b: bigint): bigint => (a + b) & MASK;
export const sumSub = (a: bigint, b: bigint): bigint => (a - b) & MASK;

/** `n` seeded random bytes: the same for the same seed, run after run. */
export function seededBytes(n: number, seed: number): Buffer {
  const rng = xoroshiro128plus(seed);
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeInt32LE(rng.next(), i);
  for (; i < n; i++) b[i] = rng.next() & 0xff;
  return b;
}

/**
 * Offsets of `count` accesses of `len` bytes in a file of `size`: in order
 * (wrapping at the end), or uniformly random and aligned to `len` from a PRNG
 * seeded with `seed` (the same sequence for every variant).
 */
export function accessOffsets(pattern: AccessPattern, count: number, len: number, size: number, seed: number): Float64Array {
  const out = new Float64Array(count);
  const slots = Math.floor(size / len);
  const rng = xoroshiro128plus(seed);
  for (let i = 0; i < count; i++) out[i] = (pattern === 'seq' ? i % slots : uniformInt(rng, 0, slots - 1)) * len;
  return out;
}

/** The database file, as a model: its bytes at any offset, and its creation. */
export class DbImage {
  /** One MiB of seeded bytes: every MiB of the file, but for its first word. */
  readonly base: Buffer;
  private readonly baseWord: bigint;

  constructor(readonly size: number, seed: number) {
    this.base = seededBytes(MiB, seed);
    this.baseWord = this.base.readBigUInt64LE(0);
  }

  /** The MiB of the file at `off` (a multiple of 1 MiB), into `out`. */
  chunk(off: number, out: Buffer): Buffer {
    this.base.copy(out);
    out.writeBigUInt64LE(BigInt(off), 0);
    return out;
  }

  /** Word sum of the file's bytes [off, off + len), a range within one MiB (accesses are aligned to their power-of-two size). */
  sum(off: number, len: number): bigint {
    const o = off % MiB;
    const s = native.sum64(this.base.subarray(o, o + len));
    return o === 0 ? sumAdd(sumSub(s, this.baseWord), BigInt(off - o)) : s;
  }

  /**
   * Create `path` holding the file (1 MiB writes, fsync'ed). The cases of a run
   * share it: when `path` already has the size, it is left as it is.
   * Returns the seconds it took, 0 when it was there.
   */
  ensure(path: string): number {
    if (existsSync(path) && statSync(path).size === this.size) return 0;
    const t0 = process.hrtime.bigint();
    const fd = openSync(path, 'w');
    try {
      const buf = Buffer.allocUnsafe(MiB);
      for (let off = 0; off < this.size; off += MiB) {
        const n = Math.min(MiB, this.size - off);
        this.chunk(off, buf);
        let done = 0;
        while (done < n) done += writeSync(fd, buf, done, n - done, off + done);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return Number(process.hrtime.bigint() - t0) / 1e9;
  }
}
