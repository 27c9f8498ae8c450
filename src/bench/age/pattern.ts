/**
 * What an aged file holds, so that it can be checked later: seeded bytes,
 * read at an offset derived from the file's path. A file's name ends with its
 * size (`f<serial>-<size>`), so its length is checked too.
 *
 * The pattern is one stretch of PRNG bytes whose length is a prime: a 4 KiB
 * block of one file matches no other block of it, and a block of another
 * file only by the chance that their offsets line up.
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { crc32c } from '../../core/format/checksum.js';

/** The largest prime below 2^20. */
export const PATTERN_BYTES = 1_048_573;
/** Bytes per read or write call (at most PATTERN_BYTES). */
export const CHUNK = 1 << 20;

export class Pattern {
  /** The pattern twice, so that any window of up to PATTERN_BYTES is one slice. */
  private readonly twice: Buffer;

  constructor(readonly seed: number) {
    const rng = xoroshiro128plus(seed);
    const words = Buffer.alloc(Math.ceil(PATTERN_BYTES / 4) * 4);
    for (let i = 0; i < words.length; i += 4) words.writeInt32LE(rng.next(), i);
    this.twice = Buffer.alloc(PATTERN_BYTES * 2);
    words.copy(this.twice, 0, 0, PATTERN_BYTES);
    words.copy(this.twice, PATTERN_BYTES, 0, PATTERN_BYTES);
  }

  /** The bytes of the file `rel` (its path under the aging root) at [pos, pos + n); n <= PATTERN_BYTES. */
  bytes(rel: string, pos: number, n: number): Buffer {
    const start = (crc32c(Buffer.from(rel)) + pos) % PATTERN_BYTES;
    return this.twice.subarray(start, start + n);
  }

  /** Create `abs` (which must not exist) holding `size` bytes of the file `rel`. */
  write(abs: string, rel: string, size: number): void {
    const fd = openSync(abs, 'wx', 0o644);
    try {
      for (let pos = 0; pos < size;) {
        const n = Math.min(CHUNK, size - pos);
        pos += writeSync(fd, this.bytes(rel, pos, n), 0, n, pos);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Read `abs` back: null when it holds exactly `size` bytes of `rel`, else what is wrong. */
  check(abs: string, rel: string, size: number, buf: Buffer = Buffer.alloc(CHUNK)): string | null {
    const fd = openSync(abs, 'r');
    try {
      let pos = 0;
      for (;;) {
        const n = readSync(fd, buf, 0, Math.min(CHUNK, buf.length), pos);
        if (n === 0) break;
        if (pos + n > size) return `longer than its ${size} bytes`;
        if (!buf.subarray(0, n).equals(this.bytes(rel, pos, n))) {
          let at = 0;
          const want = this.bytes(rel, pos, n);
          while (buf[at] === want[at]) at++;
          return `wrong bytes at offset ${pos + at}`;
        }
        pos += n;
      }
      return pos === size ? null : `${pos} bytes, its name says ${size}`;
    } finally {
      closeSync(fd);
    }
  }
}

/** `f<serial>-<size>`: the serial keeps names unique, the size makes the file checkable. */
export function fileName(serial: number, size: number): string {
  return `f${serial}-${size}`;
}

/** The size a file name says, or null for a name that is not an aged file's. */
export function sizeFromName(name: string): number | null {
  const m = /^f\d+-(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}
