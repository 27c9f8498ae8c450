/**
 * The metadata block cache, which is also the running transaction.
 *
 * Every metadata block the file system reads is loaded here once and kept;
 * every change is made to the cached image and the block is marked dirty. At
 * commit the dirty images go to the journal first and to their home
 * location after, so the pool's home blocks are only ever written with
 * committed images: the cache, not the pool, is the authority while mounted.
 */
import type { Pool } from '../media/pool.js';
import { FsError } from './api.js';
import { crc32c } from '../core/format/checksum.js';
import { BLOCK_SIZE, CRC_OFFSET } from '../core/format/pool.js';

export type BlockKind = 'crc' | 'raw';

export function sealCrc(image: Buffer): void {
  image.writeUInt32LE(crc32c(image.subarray(0, CRC_OFFSET)), CRC_OFFSET);
}

export function crcMatches(image: Buffer): boolean {
  return image.readUInt32LE(CRC_OFFSET) === crc32c(image.subarray(0, CRC_OFFSET));
}

export class MetaStore {
  private readonly cache = new Map<number, Buffer>();
  /** Dirty blocks of the running transaction, with whether they carry a CRC tail. */
  private readonly dirty = new Map<number, BlockKind>();

  constructor(
    private readonly pool: Pool,
    /** Called when a block fails its checksum, before EIO is thrown. */
    private readonly onCorrupt: (block: number, what: string) => void,
  ) {}

  /** The image of `block`; on first load, a 'crc' block is verified. */
  load(block: number, kind: BlockKind, what: string): Buffer {
    const cached = this.cache.get(block);
    if (cached) return cached;
    const image = this.pool.read(block * BLOCK_SIZE, BLOCK_SIZE);
    if (kind === 'crc' && !crcMatches(image)) {
      this.onCorrupt(block, what);
      throw new FsError('EIO', `corrupt ${what} in block ${block} (checksum mismatch); run daxvm fsck`);
    }
    this.cache.set(block, image);
    return image;
  }

  /** A block whose content is corrupt though its checksum matched (a reader's own checks failed). */
  reportCorrupt(block: number, what: string): void {
    this.onCorrupt(block, what);
  }

  /** A zeroed image for a newly allocated metadata block (never read from the pool). */
  fresh(block: number, kind: BlockKind): Buffer {
    const image = Buffer.alloc(BLOCK_SIZE);
    this.cache.set(block, image);
    this.dirty.set(block, kind);
    return image;
  }

  /** Cache an image known to be committed (journal replay), without marking it dirty. */
  preload(block: number, image: Buffer): void {
    this.cache.set(block, image);
  }

  /** Install an image as is (fsck repair) and mark it dirty. */
  install(block: number, image: Buffer, kind: BlockKind): void {
    this.cache.set(block, image);
    this.dirty.set(block, kind);
  }

  markDirty(block: number, kind: BlockKind): void {
    if (!this.cache.has(block)) throw new Error(`markDirty of uncached block ${block}`);
    this.dirty.set(block, kind);
  }

  isDirty(block: number): boolean {
    return this.dirty.has(block);
  }

  /** A freed metadata block: its image must never reach the pool again. */
  forget(block: number): void {
    this.cache.delete(block);
    this.dirty.delete(block);
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }

  /** Seal and hand over the running transaction's images, in block order. */
  takeDirty(): Array<[number, Buffer]> {
    const out: Array<[number, Buffer]> = [];
    for (const [block, kind] of this.dirty) {
      const image = this.cache.get(block)!;
      if (kind === 'crc') sealCrc(image);
      out.push([block, image]);
    }
    this.dirty.clear();
    out.sort((a, b) => a[0] - b[0]);
    return out;
  }
}
