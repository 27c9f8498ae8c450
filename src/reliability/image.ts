/**
 * One working pool file that many test images pass through, cheaply.
 *
 * The crash explorer and the image fuzzer check thousands of pool images
 * that differ from one reference image in a few 4 KiB pages. Rather than
 * copying a whole pool per image, one sparse working file is kept equal to
 * the reference (held in memory), every page that a test writes or that the
 * file system writes while it checks the image (seen through
 * Pool.setDefaultRecorder) is noted as deviant, and restore() writes back
 * the reference of just those pages.
 */
import fs from 'node:fs';
import { CliError, EXIT } from '../core/errors.js';
import type { FileSystem } from '../fs/index.js';
import type { MediaRecorder } from '../media/types.js';

export const PAGE = 4096;

export class WorkImage implements MediaRecorder {
  readonly size: number;
  /** What the working file holds once restored. */
  readonly ref: Buffer;
  private fd: number;
  private readonly deviant = new Set<number>();

  /** Creates (or overwrites) `path` as a sparse copy of `ref`. */
  constructor(readonly path: string, ref: Buffer) {
    if (ref.length % PAGE !== 0) throw new RangeError(`image size ${ref.length} is not a multiple of ${PAGE}`);
    this.size = ref.length;
    this.ref = ref;
    this.fd = fs.openSync(path, 'w+', 0o600);
    fs.ftruncateSync(this.fd, this.size);
    for (let p = 0; p < this.size / PAGE; p++) {
      const page = ref.subarray(p * PAGE, (p + 1) * PAGE);
      if (!isZero(page)) fs.writeSync(this.fd, page, 0, PAGE, p * PAGE);
    }
  }

  /** The reference content of page `p` (a view, not a copy). */
  refPage(p: number): Buffer {
    return this.ref.subarray(p * PAGE, (p + 1) * PAGE);
  }

  /** Store a whole page into the working file (it differs from the reference until restore). */
  writePage(p: number, bytes: Buffer): void {
    fs.writeSync(this.fd, bytes, 0, PAGE, p * PAGE);
    this.deviant.add(p);
  }

  /** Store bytes at any offset of the working file. */
  writeAt(offset: number, bytes: Buffer): void {
    fs.writeSync(this.fd, bytes, 0, bytes.length, offset);
    this.noteWritten(offset, bytes.length);
  }

  readAt(offset: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    fs.readSync(this.fd, b, 0, length, offset);
    return b;
  }

  /** Change the reference of page `p` and the working file with it (a page became durable). */
  setRef(p: number, bytes: Buffer): void {
    bytes.copy(this.ref, p * PAGE, 0, PAGE);
    fs.writeSync(this.fd, bytes, 0, PAGE, p * PAGE);
    this.deviant.delete(p);
  }

  noteWritten(offset: number, length: number): void {
    if (length <= 0) return;
    const last = Math.floor((offset + length - 1) / PAGE);
    for (let p = Math.floor(offset / PAGE); p <= last; p++) this.deviant.add(p);
  }

  /** MediaRecorder: a pool opened on the working file stored here. */
  onWrite(offset: number, bytes: Buffer): void {
    this.noteWritten(offset, bytes.length);
  }

  onPersist(): void {}

  /** Pages that differ from the reference now. */
  get dirtyPages(): number {
    return this.deviant.size;
  }

  /** Make the working file equal to the reference again. */
  restore(extraPages: Iterable<number> = []): void {
    for (const p of extraPages) this.deviant.add(p);
    for (const p of this.deviant) fs.writeSync(this.fd, this.ref, p * PAGE, PAGE, p * PAGE);
    this.deviant.clear();
  }

  /** Write the working file's current content to `dest` as a sparse file. */
  saveAs(dest: string): void {
    const out = fs.openSync(dest, 'w', 0o600);
    try {
      fs.ftruncateSync(out, this.size);
      const page = Buffer.alloc(PAGE);
      for (let p = 0; p < this.size / PAGE; p++) {
        fs.readSync(this.fd, page, 0, PAGE, p * PAGE);
        if (!isZero(page)) fs.writeSync(out, page, 0, PAGE, p * PAGE);
      }
    } finally {
      fs.closeSync(out);
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

const ZERO_PAGE = Buffer.alloc(PAGE);

export function isZero(b: Buffer): boolean {
  if (b.length === PAGE) return b.equals(ZERO_PAGE);
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The element of `items` that one draw of `random` (in [0, 1)) picks; an empty list is a caller's bug. */
export function pickOne<T>(items: readonly T[], random: () => number): T {
  const x = items[Math.floor(random() * items.length)];
  if (x === undefined) throw new RangeError('a pick from an empty list');
  return x;
}

/** Mix numbers into one 32-bit seed. */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ Math.floor(p / 2 ** 32), 0x01000193) >>> 0;
    h ^= h >>> 13;
  }
  return h >>> 0;
}

/** Bytes that are unlikely to appear anywhere else: a seeded pseudo-random pattern. */
export function patternBytes(length: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  const next = rng(seed);
  let i = 0;
  for (; i + 4 <= length; i += 4) b.writeUInt32LE((next() * 4294967296) >>> 0, i);
  for (; i < length; i++) b[i] = (next() * 256) >>> 0;
  return b;
}

/** A directory for scratch images: /dev/shm when usable (no disk flushes), else the temp dir. */
export function scratchDir(prefix: string, base?: string): string {
  const candidates = base ? [base] : ['/dev/shm', process.env.TMPDIR ?? '/tmp'];
  let why = '';
  for (const dir of candidates) {
    try {
      return fs.mkdtempSync(`${dir.replace(/\/$/, '')}/${prefix}`);
    } catch (err) {
      why = (err as NodeJS.ErrnoException).code ?? (err as Error).message; // try the next
    }
  }
  // --scratch given by the user (or no temp dir at all): a wrong argument, said as such, not an internal error.
  throw new CliError(base ? `--scratch ${base}: cannot make a directory there (${why})` : `no writable scratch directory among ${candidates.join(', ')} (${why})`,
    EXIT.USAGE, base ? 'give a directory this user can write to, or leave out --scratch (/dev/shm, else the temp dir)' : 'set TMPDIR to a directory this user can write to');
}

/** Close a file system over a damaged or crashed image whatever state it is in (its pool at least). */
export function closeQuietly(fsys: FileSystem): void {
  try {
    fsys.close();
  } catch {
    try {
      fsys.core.pool.close();
    } catch {
      // closed already
    }
  }
}
