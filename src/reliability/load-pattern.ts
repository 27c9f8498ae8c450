/**
 * File contents for the load tests, addressable by offset: the 4-byte word
 * at offset o of the content with seed s is a hash of (s, o/4), so a
 * writer can produce any slice and a reader can check any slice without
 * the rest, and no two seeds share bytes (another file's bytes, zeros or
 * a stale block never pass).
 *
 * Files of the concurrent clients are self-describing: a 32-byte header
 * (magic, client, sequence number, total length, seed) and then the
 * pattern, so whoever opens any file can check it whole.
 */
import { mixSeed } from './image.js';

function word(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index | 0, 0x9e3779b1) ^ Math.floor(index / 2 ** 32)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bytes [offset, offset + length) of the content with this seed. */
export function patternAt(seed: number, offset: number, length: number): Buffer {
  const first = Math.floor(offset / 4);
  const words = Math.ceil((offset + length) / 4) - first;
  const b = Buffer.allocUnsafe(words * 4);
  for (let w = 0; w < words; w++) b.writeUInt32LE(word(seed, first + w), w * 4);
  const skip = offset - first * 4;
  return b.subarray(skip, skip + length);
}

/** Offset of the first byte of `buf` (read at `offset`) that is not the pattern's, or -1. */
export function patternMismatch(seed: number, offset: number, buf: Buffer): number {
  const CHUNK = 1 << 20;
  for (let at = 0; at < buf.length; at += CHUNK) {
    const n = Math.min(CHUNK, buf.length - at);
    const want = patternAt(seed, offset + at, n);
    const got = buf.subarray(at, at + n);
    if (!want.equals(got)) {
      for (let i = 0; i < n; i++) if (want[i] !== got[i]) return offset + at + i;
    }
  }
  return -1;
}

export const HEADER_SIZE = 32;
const MAGIC = 0x444c5844; // 'DXLD'

export interface Header {
  client: number;
  seq: number;
  length: number;
  seed: number;
}

/** Seed of the content of file `seq` made by `client` in a run with `runSeed`. */
export function fileSeed(runSeed: number, client: number, seq: number): number {
  return mixSeed(runSeed, client, seq, 0x10ad);
}

/** The whole content of a self-describing file. */
export function describedContent(h: Header): Buffer {
  const b = Buffer.alloc(h.length);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt32LE(h.client, 4);
  b.writeUInt32LE(h.seq, 8);
  b.writeUInt32LE(h.length, 12);
  b.writeUInt32LE(h.seed, 16);
  patternAt(h.seed, HEADER_SIZE, h.length - HEADER_SIZE).copy(b, HEADER_SIZE);
  return b;
}

/**
 * Check a self-describing file read whole. `complete`: the file must be
 * all there (its header's length); otherwise a prefix is fine (a file its
 * writer is still writing). Returns the header, or a problem.
 */
export function checkDescribed(buf: Buffer, complete: boolean, runSeed: number): { header: Header } | { problem: string } {
  if (buf.length < HEADER_SIZE) {
    if (!complete && buf.length === 0) return { header: { client: -1, seq: -1, length: 0, seed: 0 } };
    return { problem: `${buf.length} bytes, shorter than the ${HEADER_SIZE}-byte header` };
  }
  if (buf.readUInt32LE(0) !== MAGIC) return { problem: `no header (first word ${buf.readUInt32LE(0).toString(16)})` };
  const h: Header = { client: buf.readUInt32LE(4), seq: buf.readUInt32LE(8), length: buf.readUInt32LE(12), seed: buf.readUInt32LE(16) };
  if (h.seed !== fileSeed(runSeed, h.client, h.seq)) return { problem: `header of client ${h.client} file ${h.seq} with a seed that is not that file's` };
  if (complete ? buf.length !== h.length : buf.length > h.length) {
    return { problem: `client ${h.client} file ${h.seq}: ${buf.length} bytes, the header says ${h.length}${complete ? '' : ' at most'}` };
  }
  const bad = patternMismatch(h.seed, HEADER_SIZE, buf.subarray(HEADER_SIZE));
  if (bad >= 0) return { problem: `client ${h.client} file ${h.seq}: byte ${bad} of ${buf.length} is not the file's own` };
  return { header: h };
}
