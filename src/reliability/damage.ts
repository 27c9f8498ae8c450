/**
 * How to damage a pool's structures (structures.ts says where they lie):
 * makeCase() turns a seeded case into byte patches: bit flips (no reseal:
 * the checksums must catch them), or hostile values in a field, random
 * bytes, a zeroed structure, with the checksum recomputed so that only the
 * checks of the values themselves stand between the damage and the code
 * that reads it. Journal damage is resealed through the commit block too, so
 * that replay applies it.
 */
import { crc32c, crc32ieee } from '../core/format/checksum.js';
import { INODE_CRC } from '../core/format/inode.js';
import { BLOCK_SIZE, CRC_OFFSET, INODE_SIZE, type Geometry } from '../core/format/pool.js';
import { SUPERBLOCK_CRC_OFFSET } from '../core/format/superblock.js';
import { mixSeed, pickOne, rng } from './image.js';
import { STRUCT_KINDS, type Field, type Inventory, type Seal, type Structure } from './structures.js';

/** Pages of a pool image, copied on first change. */
export class PageEditor {
  readonly pages = new Map<number, Buffer>();
  constructor(private readonly base: Buffer) {}

  private page(p: number): Buffer {
    let b = this.pages.get(p);
    if (!b) {
      b = Buffer.from(this.base.subarray(p * BLOCK_SIZE, (p + 1) * BLOCK_SIZE));
      this.pages.set(p, b);
    }
    return b;
  }

  read(offset: number, length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length;) {
      const p = Math.floor((offset + i) / BLOCK_SIZE);
      const o = (offset + i) % BLOCK_SIZE;
      const n = Math.min(length - i, BLOCK_SIZE - o);
      (this.pages.get(p) ?? this.base.subarray(p * BLOCK_SIZE, (p + 1) * BLOCK_SIZE)).copy(out, i, o, o + n);
      i += n;
    }
    return out;
  }

  write(offset: number, bytes: Buffer): void {
    for (let i = 0; i < bytes.length;) {
      const p = Math.floor((offset + i) / BLOCK_SIZE);
      const o = (offset + i) % BLOCK_SIZE;
      const n = Math.min(bytes.length - i, BLOCK_SIZE - o);
      bytes.copy(this.page(p), o, i, i + n);
      i += n;
    }
  }
}

function reseal(ed: PageEditor, offset: number, seal: Seal): void {
  const b = Buffer.alloc(4);
  if (seal === 'superblock') {
    b.writeUInt32LE(crc32c(ed.read(offset, SUPERBLOCK_CRC_OFFSET)));
    ed.write(offset + SUPERBLOCK_CRC_OFFSET, b);
  } else if (seal === 'tail') {
    b.writeUInt32LE(crc32c(ed.read(offset, CRC_OFFSET)));
    ed.write(offset + CRC_OFFSET, b);
  } else if (seal === 'inode') {
    b.writeUInt32LE(crc32c(ed.read(offset, INODE_CRC)));
    ed.write(offset + INODE_CRC, b);
  }
}

/** Recompute a transaction's commit checksum (CRC-32 chained over its blocks) and reseal the commit block. */
function resealTransaction(ed: PageEditor, tx: { blocks: number[]; commit: number }): void {
  let crc = 0;
  for (const off of tx.blocks) crc = crc32ieee(ed.read(off, BLOCK_SIZE), crc);
  const b = Buffer.alloc(4);
  b.writeUInt32LE(crc);
  ed.write(tx.commit + 20, b);
  reseal(ed, tx.commit, 'tail');
}

export interface Mutation {
  structure: Structure;
  how: string;
}

export interface FuzzCase {
  index: number;
  /** Which base image: 0 clean (unmounted), 1 crashed mid-work (journal to replay, an orphan). */
  base: number;
  mutations: Mutation[];
  /** Pool pages the mutations changed, with their new content. */
  pages: Map<number, Buffer>;
}

/** The values most likely to break a reader of a field. */
function hostileValues(f: Field, original: number, g: Geometry, r: () => number): number[] {
  const max = f.width === 8 ? 2 ** 64 - 1 : 2 ** (8 * f.width) - 1;
  const v = [0, 1, 2, 3, 7, 0xff, 0x100, 0xfff, 0x1000, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
    2 ** 32, 2 ** 40, 2 ** 53 - 1, 2 ** 63, 2 ** 64 - 1,
    g.totalBlocks - 1, g.totalBlocks, g.totalBlocks + 1, g.dataStart - 1, g.dataStart, g.inodeTableStart, g.journalStart,
    g.inodeBitmapStart, g.blockBitmapStart, g.inodeCount - 1, g.inodeCount, g.inodeCount + 1,
    original + 1, original - 1, original * 2, original + 512, original ^ (1 << Math.floor(r() * 8 * Math.min(4, f.width))),
    Math.floor(r() * max)];
  return v.filter((x) => x >= 0 && x <= max);
}

function writeField(ed: PageEditor, at: number, width: number, value: number): void {
  const b = Buffer.alloc(width);
  if (width === 8) b.writeBigUInt64LE(value >= 2 ** 64 - 1 ? (1n << 64n) - 1n : BigInt(Math.floor(value)));
  else if (width === 4) b.writeUInt32LE(value >>> 0);
  else if (width === 2) b.writeUInt16LE(value & 0xffff);
  else b.writeUInt8(value & 0xff);
  ed.write(at, b);
}

function readField(ed: PageEditor, at: number, width: number): number {
  const b = ed.read(at, width);
  if (width === 8) return Number(b.readBigUInt64LE(0));
  if (width === 4) return b.readUInt32LE(0);
  if (width === 2) return b.readUInt16LE(0);
  return b.readUInt8(0);
}

/** Damage one structure; returns what was done. */
function damage(ed: PageEditor, s: Structure, g: Geometry, r: () => number): string {
  const x = r();
  const sealAfter = (): void => {
    if (s.kind === 'journal-image') {
      reseal(ed, s.offset, s.imageSeal ?? 'none');
      if (s.imageSeal === 'inode') for (let k = 0; k < BLOCK_SIZE; k += INODE_SIZE) if (readField(ed, s.offset + k, 4) !== 0) reseal(ed, s.offset + k, 'inode');
    } else {
      reseal(ed, s.offset, s.seal);
    }
    if (s.tx) resealTransaction(ed, s.tx);
  };
  if (x < 0.25) {
    const n = 1 + Math.floor(r() * 4);
    const bits: number[] = [];
    for (let i = 0; i < n; i++) {
      const bit = Math.floor(r() * s.length * 8);
      const at = s.offset + (bit >> 3);
      const b = ed.read(at, 1);
      b.writeUInt8(b.readUInt8(0) ^ (1 << (bit & 7)), 0);
      ed.write(at, b);
      bits.push(bit);
    }
    return `flipped bit(s) ${bits.join(', ')} (not resealed)`;
  }
  if (x < 0.75 && s.fields.length) {
    const f = pickOne(s.fields, r);
    const at = s.offset + f.offset;
    const original = readField(ed, at, f.width);
    const values = hostileValues(f, original, g, r);
    const value = pickOne(values, r);
    writeField(ed, at, f.width, value);
    sealAfter();
    return `${f.name} ${original} -> ${value} (resealed)`;
  }
  if (x < 0.93) {
    const len = 1 + Math.floor(r() * 32);
    const start = Math.floor(r() * Math.max(1, s.length - len));
    const fill = r();
    const bytes = Buffer.alloc(len);
    for (let i = 0; i < len; i++) bytes[i] = fill < 0.3 ? 0 : fill < 0.5 ? 0xff : Math.floor(r() * 256);
    ed.write(s.offset + start, bytes);
    sealAfter();
    return `${len} byte(s) at +${start} overwritten (${fill < 0.3 ? 'zeros' : fill < 0.5 ? '0xff' : 'random'}, resealed)`;
  }
  ed.write(s.offset, Buffer.alloc(s.length));
  if (r() < 0.5) {
    sealAfter();
    return 'zeroed (resealed)';
  }
  return 'zeroed';
}

/** The case `index` of a run with `seed`: which base, what damage. */
export function makeCase(seed: number, index: number, bases: Buffer[], inventories: Inventory[]): FuzzCase {
  const r = rng(mixSeed(seed, index, 0xf022));
  const base = index % bases.length;
  const inv = inventories[base];
  const image = bases[base];
  if (!inv || !image) throw new RangeError(`case ${index}: ${bases.length} base image(s), ${inventories.length} inventories`);
  const kinds = STRUCT_KINDS.filter((k) => (inv.byKind.get(k)?.length ?? 0) > 0);
  const ed = new PageEditor(image);
  const mutations: Mutation[] = [];
  const count = r() < 0.15 ? 2 + Math.floor(r() * 2) : 1;
  for (let m = 0; m < count; m++) {
    // Round robin over the kinds for the first mutation, so every kind gets its share.
    const kind = m === 0 ? kinds[Math.floor(index / bases.length) % kinds.length] : pickOne(kinds, r);
    const list = kind === undefined ? undefined : inv.byKind.get(kind);
    if (!list) throw new Error('a pool image with no structures to damage');
    const s = pickOne(list, r);
    mutations.push({ structure: s, how: damage(ed, s, inv.geometry, r) });
  }
  return { index, base, mutations, pages: ed.pages };
}

export function describeCase(c: FuzzCase): string {
  return `${c.base === 0 ? 'clean' : 'crashed'} base; ` + c.mutations.map((m) => `${m.structure.what}: ${m.how}`).join('; ');
}
