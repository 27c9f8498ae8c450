/**
 * Bitmaps: an in-memory bit array for fast searching, mirrored into on-media
 * bitmap blocks (BITS_PER_BITMAP_BLOCK bits each, CRC tail) through the
 * metadata store, so every change is part of the running transaction.
 */
import { BITS_PER_BITMAP_BLOCK } from '../core/format/pool.js';
import type { MetaStore } from './metastore.js';

export class Bits {
  readonly bytes: Uint8Array;
  constructor(readonly size: number) {
    this.bytes = new Uint8Array(Math.ceil(size / 8));
  }
  /** Bits past the end read as clear (and are never set). */
  get(i: number): boolean {
    return ((this.bytes[i >>> 3] ?? 0) & (1 << (i & 7))) !== 0;
  }
  set(i: number, value: boolean): void {
    const k = i >>> 3;
    const byte = this.bytes[k];
    if (byte === undefined) return;
    this.bytes[k] = value ? byte | (1 << (i & 7)) : byte & ~(1 << (i & 7));
  }
  setRange(start: number, count: number, value: boolean): void {
    let i = start;
    const end = start + count;
    while (i < end) {
      if ((i & 7) === 0 && i + 8 <= end) {
        this.bytes[i >>> 3] = value ? 0xff : 0;
        i += 8;
        continue;
      }
      this.set(i, value);
      i++;
    }
  }
  /** First clear bit at or after `from` (before `end`), or -1. */
  nextClear(from: number, end = this.size): number {
    let i = from;
    while (i < end) {
      if ((i & 7) === 0 && this.bytes[i >>> 3] === 0xff) { i += 8; continue; }
      if (!this.get(i)) return i;
      i++;
    }
    return -1;
  }
  /** First set bit at or after `from` (before `end`), or -1. */
  nextSet(from: number, end = this.size): number {
    let i = from;
    while (i < end) {
      if ((i & 7) === 0 && this.bytes[i >>> 3] === 0) { i += 8; continue; }
      if (this.get(i)) return i;
      i++;
    }
    return -1;
  }

  /** Length of the run of set bits starting at `from`, up to `max`. */
  setRun(from: number, max: number): number {
    let n = 0;
    const end = Math.min(this.size, from + max);
    for (let i = from; i < end; i++) {
      if ((i & 7) === 0 && i + 8 <= end && this.bytes[i >>> 3] === 0xff) { n += 8; i += 7; continue; }
      if (!this.get(i)) break;
      n++;
    }
    return n;
  }

  /** Length of the run of clear bits starting at `from`, up to `max`. */
  clearRun(from: number, max: number): number {
    let n = 0;
    const end = Math.min(this.size, from + max);
    for (let i = from; i < end; i++) {
      if ((i & 7) === 0 && i + 8 <= end && this.bytes[i >>> 3] === 0) { n += 8; i += 7; continue; }
      if (this.get(i)) break;
      n++;
    }
    return n;
  }
  countSet(): number {
    let n = 0;
    for (let i = 0; i < this.size; i++) if (this.get(i)) n++;
    return n;
  }
}

/** The on-media side of a bitmap that starts at block `start`. */
export class MediaBitmap {
  /** A tolerant load replaced a corrupt block with an all-free one (the caller rebuilds it). */
  replaced = false;

  constructor(
    private readonly store: MetaStore,
    private readonly start: number,
    private readonly blocks: number,
    readonly size: number,
    private readonly what: string,
  ) {}

  /**
   * Read and verify every bitmap block. `tolerant` (fsck): a corrupt block
   * reads as all-free and is replaced by a fresh image to be rebuilt.
   */
  load(tolerant = false): Bits {
    const bits = new Bits(this.size);
    for (let b = 0; b < this.blocks; b++) {
      let image: Buffer;
      try {
        image = this.store.load(this.start + b, 'crc', this.what);
      } catch (err) {
        if (!tolerant) throw err;
        image = this.store.fresh(this.start + b, 'crc');
        this.replaced = true;
      }
      const first = b * BITS_PER_BITMAP_BLOCK;
      const count = Math.min(BITS_PER_BITMAP_BLOCK, this.size - first);
      if (first % 8 === 0) {
        bits.bytes.set(image.subarray(0, Math.ceil(count / 8)), first / 8);
        // Bits past `size` in the last byte stay as loaded; callers never look there.
      }
    }
    return bits;
  }

  // Below: `bit` < BITS_PER_BITMAP_BLOCK, so byte `bit >>> 3` lies inside the 4 KiB image (the `!`s are proven).
  get(i: number): boolean {
    const image = this.store.load(this.start + Math.floor(i / BITS_PER_BITMAP_BLOCK), 'crc', this.what);
    const bit = i % BITS_PER_BITMAP_BLOCK;
    return (image[bit >>> 3]! & (1 << (bit & 7))) !== 0;
  }

  set(i: number, value: boolean): void {
    const block = this.start + Math.floor(i / BITS_PER_BITMAP_BLOCK);
    const bit = i % BITS_PER_BITMAP_BLOCK;
    const image = this.store.load(block, 'crc', this.what);
    if (value) image[bit >>> 3]! |= 1 << (bit & 7);
    else image[bit >>> 3]! &= ~(1 << (bit & 7));
    this.store.markDirty(block, 'crc');
  }

  /** Whole bytes at a time where it can, one dirty mark per bitmap block. */
  setRange(start: number, count: number, value: boolean): void {
    let i = start;
    const end = start + count;
    while (i < end) {
      const blockIndex = Math.floor(i / BITS_PER_BITMAP_BLOCK);
      const block = this.start + blockIndex;
      const image = this.store.load(block, 'crc', this.what);
      const blockEnd = Math.min(end, (blockIndex + 1) * BITS_PER_BITMAP_BLOCK);
      let bit = i - blockIndex * BITS_PER_BITMAP_BLOCK;
      const stop = blockEnd - blockIndex * BITS_PER_BITMAP_BLOCK;
      while (bit < stop) {
        if ((bit & 7) === 0 && bit + 8 <= stop) {
          image[bit >>> 3] = value ? 0xff : 0;
          bit += 8;
          continue;
        }
        if (value) image[bit >>> 3]! |= 1 << (bit & 7);
        else image[bit >>> 3]! &= ~(1 << (bit & 7));
        bit++;
      }
      this.store.markDirty(block, 'crc');
      i = blockEnd;
    }
  }
}
