/**
 * The inode table: allocation, loading (CRC-checked), saving into the running
 * transaction, and the extent chain of files with more than 8 extents
 * (layouts: src/core/format/inode.ts).
 */
import { FsError, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK } from './api.js';
import type { BlockAllocator } from './alloc.js';
import type { Bits, MediaBitmap } from './bitmap.js';
import type { Extent } from './extents.js';
import {
  CHAIN_COUNT, CHAIN_HEADER, CHAIN_INO, CHAIN_MAGIC, CHAIN_MAGIC_AT, CHAIN_NEXT, EXTENT, EXTENTS_PER_CHAIN_BLOCK, INLINE_BYTES, INLINE_EXTENTS,
  INODE_EXTENT_COUNT, INODE_FLAG_INLINE_SYMLINK, INODE_GENERATION, INODE_MODE,
} from '../core/format/inode.js';
import { decodeInode, encodeInode, Inode, readExtent, writeExtent } from './inode.js';
import { BLOCK_SIZE, CRC_OFFSET, INODE_SIZE, INODES_PER_BLOCK, MAX_FILE_SIZE, type Geometry } from '../core/format/pool.js';
import type { MetaStore } from './metastore.js';
import { readU64, writeU64 } from '../core/format/u64.js';


const VALID_TYPES = new Set([S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK]);

/** The chain block being built by saveChain (one at a time, copied out before the next). */
const chainImage = Buffer.alloc(BLOCK_SIZE);

export class InodeTable {
  private readonly cache = new Map<number, Inode>();
  /**
   * Saved since their records were last encoded. A save marks the inode's
   * block dirty at once (the transaction's size counts it) but encodes the
   * record (and its CRC) only when the images are taken at the commit:
   * `tar x` saves each file five to seven times (create, writes, owner,
   * mode, times) between two commits.
   */
  private readonly unencoded = new Set<Inode>();
  private cursor = 1;
  private freeCount: number;

  constructor(
    private readonly store: MetaStore,
    private readonly geometry: Geometry,
    private readonly used: Bits,
    private readonly media: MediaBitmap,
    private readonly alloc: BlockAllocator,
  ) {
    this.freeCount = geometry.inodeCount - used.countSet();
  }

  get free(): number {
    return this.freeCount;
  }

  isUsed(ino: number): boolean {
    return ino > 0 && ino < this.geometry.inodeCount && this.used.get(ino);
  }

  private record(ino: number): { image: Buffer; block: number; rec: Buffer } {
    const block = this.geometry.inodeTableStart + Math.floor(ino / INODES_PER_BLOCK);
    const image = this.store.load(block, 'raw', 'inode table');
    const off = (ino % INODES_PER_BLOCK) * INODE_SIZE;
    return { image, block, rec: image.subarray(off, off + INODE_SIZE) };
  }

  /** The inode if it is in memory (never loads). */
  cachedInode(ino: number): Inode | undefined {
    return this.cache.get(ino);
  }

  /** The inode `ino`, which must be in use. */
  get(ino: number): Inode {
    const cached = this.cache.get(ino);
    if (cached) return cached;
    if (!this.isUsed(ino)) throw new FsError('ENOENT', `inode ${ino} is not in use`);
    const { rec, block } = this.record(ino);
    const inode = decodeInode(ino, rec, (head, count) => this.loadChain(ino, head, count));
    if (!inode || inode.mode === 0) throw new FsError('EIO', `corrupt inode ${ino}; run daxvm fsck`);
    const why = this.invalid(inode);
    if (why) {
      this.store.reportCorrupt(block, `inode ${ino}: ${why}`);
      throw new FsError('EIO', `corrupt inode ${ino} (${why}); run daxvm fsck`);
    }
    this.cache.set(ino, inode);
    return inode;
  }

  /**
   * What makes a decoded inode unusable (its CRC matched, so the values are
   * what was written, or damage that kept the CRC right): null when sane.
   * Everything a reader would index the pool or a Buffer with is checked.
   */
  private invalid(inode: Inode): string | null {
    const g = this.geometry;
    if (!VALID_TYPES.has(inode.type)) return `file type ${inode.type.toString(8)}`;
    if (!Number.isSafeInteger(inode.size) || inode.size > MAX_FILE_SIZE) return `size ${inode.size}`;
    if (inode.flags & INODE_FLAG_INLINE_SYMLINK) {
      if (inode.type !== S_IFLNK || inode.size > INLINE_BYTES) return 'an inline symlink that is not one';
    } else if (inode.type === S_IFLNK && inode.size > BLOCK_SIZE - 1) {
      return `symlink of ${inode.size} bytes`;
    }
    let prevEnd = 0;
    for (const e of inode.extents.items) {
      if (e.count < 1 || e.logical < prevEnd || e.logical + e.count > 2 ** 32) return `extent ${e.logical}+${e.count} out of order or out of range`;
      if (e.physical < g.dataStart || e.physical + e.count > g.totalBlocks) return `extent ${e.logical}+${e.count} at block ${e.physical} outside the data area`;
      prevEnd = e.logical + e.count;
    }
    const inData = (b: number): boolean => b === 0 || (b >= g.dataStart && b < g.totalBlocks);
    if (!inData(inode.xattrBlock)) return `xattr block ${inode.xattrBlock}`;
    if (!inData(inode.pptRoot) || inode.pptLevel > 4 || (inode.pptRoot === 0) !== (inode.pptLevel === 0)) return `page-table root ${inode.pptRoot} level ${inode.pptLevel}`;
    if (inode.type === S_IFDIR && (inode.parent === 0 || inode.parent >= g.inodeCount)) return `parent ${inode.parent}`;
    return null;
  }

  /**
   * fsck: the inode a record holds, whatever the bitmap says, without
   * caching it; null when the slot is free or the record is corrupt.
   */
  peek(ino: number): Inode | null {
    if (ino <= 0 || ino >= this.geometry.inodeCount) return null;
    const cached = this.cache.get(ino);
    if (cached) return cached;
    try {
      const { rec } = this.record(ino);
      const inode = decodeInode(ino, rec, (head, count) => this.loadChain(ino, head, count));
      return inode && inode.mode !== 0 && !this.invalid(inode) ? inode : null;
    } catch (err) {
      if (err instanceof FsError) return null;
      throw err;
    }
  }

  /**
   * info: mode and extent count of each inode in use, read from the raw
   * records (no decoding, no extent chain walked): one table block per 16
   * inodes in use, nothing for the free part of a large pool.
   */
  *extentCounts(): Generator<{ ino: number; mode: number; extents: number }> {
    this.encodeSaved();
    for (let ino = this.used.nextSet(1, this.geometry.inodeCount); ino > 0; ino = this.used.nextSet(ino + 1, this.geometry.inodeCount)) {
      const { rec } = this.record(ino);
      yield { ino, mode: rec.readUInt32LE(INODE_MODE), extents: rec.readUInt32LE(INODE_EXTENT_COUNT) };
    }
  }

  /** fsck: take `ino` as in use in memory (the bitmap pass compares with the media). */
  assumeUsed(ino: number): void {
    if (ino <= 0 || ino >= this.geometry.inodeCount || this.used.get(ino)) return;
    this.used.set(ino, true);
    this.freeCount--;
  }

  /** fsck repair: a fresh inode in slot `ino` whatever its record held (not yet saved). */
  remake(ino: number): Inode {
    const { rec } = this.record(ino);
    const inode = new Inode(ino);
    inode.generation = (rec.readUInt32LE(INODE_GENERATION) + 1) >>> 0;
    this.assumeUsed(ino);
    this.media.set(ino, true);
    this.cache.set(ino, inode);
    return inode;
  }

  /** A fresh inode (not yet saved); its generation follows the slot's last one. */
  allocate(): Inode {
    if (this.freeCount <= 0) throw new FsError('ENOSPC', 'no free inode');
    let ino = this.used.nextClear(Math.max(1, this.cursor));
    if (ino < 0) ino = this.used.nextClear(1);
    if (ino < 0) throw new FsError('ENOSPC', 'no free inode');
    const { rec } = this.record(ino);
    const inode = new Inode(ino);
    inode.generation = (rec.readUInt32LE(INODE_GENERATION) + 1) >>> 0;
    this.used.set(ino, true);
    this.media.set(ino, true);
    this.freeCount--;
    this.cursor = ino + 1;
    this.cache.set(ino, inode);
    return inode;
  }

  /** Write the inode (and its extent chain) into the running transaction; its record is encoded by encodeSaved. */
  save(inode: Inode): void {
    if (!(inode.flags & INODE_FLAG_INLINE_SYMLINK)) this.saveChain(inode);
    inode.seq = (inode.seq + 2) & ~1;
    const block = this.geometry.inodeTableStart + Math.floor(inode.ino / INODES_PER_BLOCK);
    this.store.load(block, 'raw', 'inode table');
    this.store.markDirty(block, 'raw');
    this.unencoded.add(inode);
  }

  /** Encode the records of the inodes saved since the last call into their blocks' images (before anything reads those). */
  encodeSaved(): void {
    for (const inode of this.unencoded) encodeInode(inode, this.record(inode.ino).rec);
    this.unencoded.clear();
  }

  /** Release the slot; the record keeps only the generation. */
  release(inode: Inode): void {
    this.unencoded.delete(inode);
    for (const b of inode.chainBlocks) this.freeMeta(b);
    inode.chainBlocks = [];
    const { block, rec } = this.record(inode.ino);
    rec.fill(0);
    rec.writeUInt32LE(inode.generation >>> 0, INODE_GENERATION);
    this.store.markDirty(block, 'raw');
    this.used.set(inode.ino, false);
    this.media.set(inode.ino, false);
    this.freeCount++;
    this.cache.delete(inode.ino);
  }

  /** A metadata block for `inode` (chain, directory, xattr, symlink), counted in its blocks. */
  allocMeta(goal?: number): number {
    const [run] = this.alloc.allocate({ count: 1, goal, meta: true });
    if (!run) throw new FsError('ENOSPC', 'no block for metadata');
    return run.start;
  }

  freeMeta(block: number): void {
    this.store.forget(block);
    this.alloc.free({ start: block, count: 1 });
  }

  private saveChain(inode: Inode): void {
    const items = inode.extents.items;
    const need = items.length <= INLINE_EXTENTS ? 0 : Math.ceil(items.length / EXTENTS_PER_CHAIN_BLOCK);
    while (inode.chainBlocks.length > need) {
      this.freeMeta(inode.chainBlocks.pop()!);
      inode.blocks--;
    }
    while (inode.chainBlocks.length < need) {
      const last = inode.chainBlocks[inode.chainBlocks.length - 1];
      const block = this.allocMeta(last !== undefined ? last + 1 : undefined);
      this.store.fresh(block, 'crc');
      inode.chainBlocks.push(block);
      inode.blocks++;
    }
    inode.extentChain = inode.chainBlocks[0] ?? 0;
    if (inode.chainBlocks.length === 0) return; // most saves: no 4 KiB image to build
    const image = chainImage;
    inode.chainBlocks.forEach((block, i) => {
      image.fill(0);
      const slice = items.slice(i * EXTENTS_PER_CHAIN_BLOCK, (i + 1) * EXTENTS_PER_CHAIN_BLOCK);
      image.writeUInt32LE(CHAIN_MAGIC, CHAIN_MAGIC_AT);
      image.writeUInt32LE(inode.ino, CHAIN_INO);
      writeU64(image, CHAIN_NEXT, inode.chainBlocks[i + 1] ?? 0);
      image.writeUInt32LE(slice.length, CHAIN_COUNT);
      slice.forEach((e, j) => writeExtent(image, CHAIN_HEADER + j * EXTENT.size, e));
      const current = this.store.load(block, 'crc', 'extent chain');
      if (!current.subarray(0, CRC_OFFSET).equals(image.subarray(0, CRC_OFFSET))) {
        image.copy(current, 0, 0, CRC_OFFSET);
        this.store.markDirty(block, 'crc');
      }
    });
  }

  private loadChain(ino: number, head: number, count: number): { items: Extent[]; chain: number[] } {
    const items: Extent[] = [];
    const chain: number[] = [];
    let block = head;
    const maxBlocks = Math.ceil(count / EXTENTS_PER_CHAIN_BLOCK);
    while (block !== 0 && items.length < count) {
      if (chain.length >= maxBlocks || block < this.geometry.dataStart || block >= this.geometry.totalBlocks) {
        throw new FsError('EIO', `corrupt extent chain of inode ${ino}; run daxvm fsck`);
      }
      const image = this.store.load(block, 'crc', 'extent chain');
      if (image.readUInt32LE(CHAIN_MAGIC_AT) !== CHAIN_MAGIC || image.readUInt32LE(CHAIN_INO) !== ino) {
        throw new FsError('EIO', `extent chain block ${block} does not belong to inode ${ino}; run daxvm fsck`);
      }
      const n = Math.min(image.readUInt32LE(CHAIN_COUNT), EXTENTS_PER_CHAIN_BLOCK);
      for (let j = 0; j < n; j++) items.push(readExtent(image, CHAIN_HEADER + j * EXTENT.size));
      chain.push(block);
      block = readU64(image, CHAIN_NEXT);
    }
    if (items.length !== count) throw new FsError('EIO', `extent chain of inode ${ino} is short; run daxvm fsck`);
    return { items, chain };
  }

  /** fsck: how many inode numbers the bitmap marks differently from `inUse`. */
  differences(inUse: Set<number>): number {
    let n = 0;
    for (let ino = 1; ino < this.geometry.inodeCount; ino++) if (this.media.get(ino) !== inUse.has(ino)) n++;
    return n;
  }

  /** fsck repair: the inode bitmap becomes exactly `inUse`. */
  rebuild(inUse: Set<number>): void {
    let free = 0;
    for (let ino = 1; ino < this.geometry.inodeCount; ino++) {
      const want = inUse.has(ino);
      if (this.media.get(ino) !== want) this.media.set(ino, want);
      this.used.set(ino, want);
      if (!want) free++;
    }
    this.freeCount = free;
  }

  /** fsck repair: release a slot whose record cannot be read. */
  forceFree(ino: number): void {
    const cached = this.cache.get(ino);
    if (cached) this.unencoded.delete(cached);
    const { block, rec } = this.record(ino);
    rec.fill(0);
    this.store.markDirty(block, 'raw');
    this.used.set(ino, false);
    this.media.set(ino, false);
    this.freeCount++;
    this.cache.delete(ino);
  }

  /** Every cached inode (fsck and orphan handling walk these). */
  cached(): IterableIterator<Inode> {
    return this.cache.values();
  }

  /** Inodes in use, by number (bitmap order). */
  *inUse(): Generator<number> {
    for (let ino = 1; ino < this.geometry.inodeCount; ino++) if (this.used.get(ino)) yield ino;
  }
}
