/**
 * The data set of the read-style benches (read, mt): N files of S bytes,
 * written through the mount and, byte for byte the same, into the host
 * directory of the native variants; 1000 files to a directory. Their
 * contents are random (a seeded stream; every file stamped with its number),
 * and the set's checksum, the uint64 word sum of all of it, is taken from
 * the buffers written: the reference every variant's sum must equal.
 */
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native.js';

const CHUNK = 1024 * 1024;
const PER_DIR = 1000;
const MASK = (1n << 64n) - 1n;

/** Sum of uint64 words, wrapping: the checksum arithmetic. */
export const addSum = (a: bigint, b: bigint): bigint => (a + b) & MASK;
export const hex = (s: bigint): string => s.toString(16).padStart(16, '0');

/** xorshift32, seeded: the same files for the same seed, run after run. */
function fillRandom(buf: Buffer, seed: number): void {
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    buf.writeUInt32LE(x, i);
  }
}

export interface FileSet {
  /** Paths of the files on the mount, and of the same files in the host directory (empty without one). */
  mount: string[];
  native: string[];
  size: number;
  /** Hex uint64 word sum of every file's contents. */
  checksum: string;
  remove(): void;
}

/**
 * Write `count` files of `size` bytes under `mountDir/name` (and
 * `nativeDir/name` when nativeDir is given), each written in 1 MiB writes.
 */
export function writeFileSet(o: { mountDir: string; nativeDir?: string; name: string; count: number; size: number; seed: number }): FileSet {
  const base = Buffer.allocUnsafe(Math.min(o.size, CHUNK));
  fillRandom(base, o.seed);
  const roots = [join(o.mountDir, o.name), ...(o.nativeDir ? [join(o.nativeDir, o.name)] : [])];
  const paths: string[][] = roots.map(() => []);
  let sum = 0n;
  const chunk = Buffer.allocUnsafe(base.length);
  for (let i = 0; i < o.count; i++) {
    const sub = `d${Math.floor(i / PER_DIR)}`;
    if (i % PER_DIR === 0) for (const r of roots) mkdirSync(join(r, sub), { recursive: true });
    const fds = roots.map((r, k) => {
      const p = join(r, sub, `f${i}`);
      paths[k]!.push(p);
      return openSync(p, 'w');
    });
    try {
      for (let off = 0; off < o.size; off += chunk.length) {
        const n = Math.min(chunk.length, o.size - off);
        base.copy(chunk, 0, 0, n);
        // File number and chunk offset in the first word: no two chunks of the set alike.
        if (n >= 8) chunk.writeBigUInt64LE(BigInt(i) * 0x100000001n + BigInt(off), 0);
        sum = addSum(sum, native.sum64(chunk, n));
        for (const fd of fds) writeSync(fd, chunk, 0, n, off);
      }
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }
  return {
    mount: paths[0]!,
    native: paths[1] ?? [],
    size: o.size,
    checksum: hex(sum),
    remove: () => { for (const r of roots) rmSync(r, { recursive: true, force: true }); },
  };
}
