/**
 * Where every metadata structure of a pool lies, and how to damage it.
 *
 * inventory() opens a pool read-only (with its journal replayed in memory)
 * and lists each structure: its byte range in the pool, its fields (offset,
 * width), and how its checksum is sealed. mutate() turns a seeded case into
 * byte patches: bit flips (no reseal: the checksums must catch them), or
 * hostile values in a field, random bytes, a zeroed structure, with the
 * checksum recomputed so that only the checks of the values themselves
 * stand between the damage and the code that reads it. Journal damage is
 * resealed through the commit block too, so that replay applies it.
 */
import { S_IFDIR, S_IFLNK, S_IFREG } from '../fs/api.js';
import { crc32c, crc32ieee } from '../fs/checksum.js';
import { INODE_FLAG_INLINE_SYMLINK } from '../fs/inode.js';
import { BLOCK_SIZE, CRC_OFFSET, INODE_SIZE, SUPERBLOCK_CRC_OFFSET, type Geometry } from '../fs/layout.js';
import { openCore } from '../fs/open.js';
import { walkTable } from '../ppt/tables.js';
import { mixSeed, rng } from './image.js';

export type Seal = 'superblock' | 'tail' | 'inode' | 'none';

export type StructKind =
  | 'superblock' | 'backup-superblock' | 'journal-descriptor' | 'journal-commit' | 'journal-image'
  | 'inode-bitmap' | 'block-bitmap' | 'inode' | 'directory' | 'extent-chain' | 'xattr' | 'symlink-block' | 'ppt-node';

export const STRUCT_KINDS: StructKind[] = [
  'superblock', 'backup-superblock', 'journal-descriptor', 'journal-commit', 'journal-image',
  'inode-bitmap', 'block-bitmap', 'inode', 'directory', 'extent-chain', 'xattr', 'symlink-block', 'ppt-node',
];

export interface Field {
  name: string;
  offset: number;
  width: 1 | 2 | 4 | 8;
}

export interface Structure {
  kind: StructKind;
  /** Byte offset in the pool and length. */
  offset: number;
  length: number;
  seal: Seal;
  fields: Field[];
  what: string;
  /** Journal image: how its target is sealed (to reseal a damaged image). */
  imageSeal?: Seal;
  /** Journal blocks: the transaction (descriptor .. commit) it belongs to, as pool byte offsets. */
  tx?: { blocks: number[]; commit: number };
}

export interface Inventory {
  geometry: Geometry;
  structures: Structure[];
  byKind: Map<StructKind, Structure[]>;
}

const u32 = (name: string, offset: number): Field => ({ name, offset, width: 4 });
const u64 = (name: string, offset: number): Field => ({ name, offset, width: 8 });

const SUPERBLOCK_FIELDS: Field[] = [
  u32('version', 8), u32('compat', 12), u32('incompat', 16), u32('rocompat', 20), u32('block size', 24),
  u64('total blocks', 32), u32('inode count', 40), u32('inode size', 44), u64('journal start', 48), u64('journal blocks', 56),
  u64('inode bitmap start', 64), u32('inode bitmap blocks', 72), u64('block bitmap start', 80), u32('block bitmap blocks', 88),
  u64('inode table start', 96), u32('inode table blocks', 104), u64('lease table start', 112), u32('lease table blocks', 120),
  u64('data start', 128), u32('root inode', 136), u32('state', 140), u64('journal sequence', 144), u32('mount count', 152),
  u32('page_tables_on', 200), u32('msync', 204), u32('zeroout_blocks', 208), u32('zombie_max_pages', 212),
];

const INODE_FIELDS: Field[] = [
  u32('mode', 0), u32('uid', 4), u32('gid', 8), u32('nlink', 12), u64('size', 16), u64('blocks', 24),
  u32('generation', 64), u32('seq', 68), u32('flags', 72), u32('extent count', 76), u64('extent chain', 80),
  u64('xattr block', 88), u64('ppt root', 96), u32('ppt level', 104), u32('ppt nodes', 108),
  u32('extent 0 logical', 112), u32('extent 0 count', 116), u64('extent 0 physical', 120),
  u32('extent 1 logical', 128), u32('extent 1 count', 132), u64('extent 1 physical', 136),
  u32('extent 7 count', 228), u64('extent 7 physical', 232), u32('parent', 240), u32('rdev', 244),
];

/** List every metadata structure of the pool at `path` (opened read-only, journal replayed in memory). */
export function inventory(path: string): Inventory {
  const { core } = openCore(path, { readOnly: true, noLock: true });
  const g = core.sb.geometry;
  const out: Structure[] = [];
  const block = (b: number): number => b * BLOCK_SIZE;
  const homeSeal = new Map<number, Seal>();
  try {
    out.push({ kind: 'superblock', offset: 0, length: 512, seal: 'superblock', fields: SUPERBLOCK_FIELDS, what: 'primary superblock' });
    out.push({ kind: 'backup-superblock', offset: BLOCK_SIZE, length: 512, seal: 'superblock', fields: SUPERBLOCK_FIELDS, what: 'backup superblock' });
    for (let i = 0; i < g.inodeBitmapBlocks; i++) {
      homeSeal.set(g.inodeBitmapStart + i, 'tail');
      out.push({ kind: 'inode-bitmap', offset: block(g.inodeBitmapStart + i), length: BLOCK_SIZE, seal: 'tail', fields: [], what: `inode bitmap block ${i}` });
    }
    for (let i = 0; i < g.blockBitmapBlocks; i++) {
      homeSeal.set(g.blockBitmapStart + i, 'tail');
      out.push({ kind: 'block-bitmap', offset: block(g.blockBitmapStart + i), length: BLOCK_SIZE, seal: 'tail', fields: [], what: `block bitmap block ${i}` });
    }
    for (let b = g.inodeTableStart; b < g.inodeTableStart + g.inodeTableBlocks; b++) homeSeal.set(b, 'inode');
    for (const ino of core.inodes.inUse()) {
      const at = block(g.inodeTableStart) + ino * INODE_SIZE;
      out.push({ kind: 'inode', offset: at, length: INODE_SIZE, seal: 'inode', fields: INODE_FIELDS, what: `inode ${ino}` });
      let inode;
      try {
        inode = core.inode(ino);
      } catch {
        continue;
      }
      if (inode.type === S_IFDIR) {
        for (const e of inode.extents.items) {
          for (let k = 0; k < e.count; k++) {
            const b = e.physical + k;
            homeSeal.set(b, 'tail');
            out.push({ kind: 'directory', offset: block(b), length: BLOCK_SIZE, seal: 'tail', fields: dirFields(core.store.load(b, 'crc', 'directory block')), what: `directory block ${b} of inode ${ino}` });
          }
        }
      }
      if (inode.type === S_IFLNK && !(inode.flags & INODE_FLAG_INLINE_SYMLINK)) {
        const b = inode.extents.lookup(0);
        if (b > 0) out.push({ kind: 'symlink-block', offset: block(b), length: BLOCK_SIZE, seal: 'none', fields: [u32('first bytes', 0)], what: `symlink block ${b} of inode ${ino}` });
      }
      for (const b of inode.chainBlocks) {
        homeSeal.set(b, 'tail');
        const f: Field[] = [u32('magic', 0), u32('inode', 4), u64('next', 8), u32('count', 16)];
        for (let k = 0; k < 4; k++) f.push(u32(`entry ${k} logical`, 32 + k * 16), u32(`entry ${k} count`, 36 + k * 16), u64(`entry ${k} physical`, 40 + k * 16));
        out.push({ kind: 'extent-chain', offset: block(b), length: BLOCK_SIZE, seal: 'tail', fields: f, what: `extent chain block ${b} of inode ${ino}` });
      }
      if (inode.xattrBlock) {
        homeSeal.set(inode.xattrBlock, 'tail');
        out.push({
          kind: 'xattr', offset: block(inode.xattrBlock), length: BLOCK_SIZE, seal: 'tail',
          fields: [u32('magic', 0), u32('inode', 4), { name: 'count', offset: 8, width: 2 }, { name: 'name length', offset: 16, width: 1 }, { name: 'value length', offset: 18, width: 2 }],
          what: `xattr block ${inode.xattrBlock} of inode ${ino}`,
        });
      }
      if (inode.type === S_IFREG && inode.pptRoot) {
        try {
          walkTable((b) => core.nodeStore.node(b), core.tableOf(inode), () => undefined, (b, level) => {
            homeSeal.set(b, 'none');
            const node = core.nodeStore.node(b);
            const f: Field[] = [];
            for (let i = 0; i < 512 && f.length < 12; i++) if (node.readUInt32LE(i * 8) & 1) f.push(u64(`entry ${i}`, i * 8));
            if (f.length === 0) f.push(u64('entry 0', 0));
            out.push({ kind: 'ppt-node', offset: block(b), length: BLOCK_SIZE, seal: 'none', fields: f, what: `page-table node ${b} (level ${level}) of inode ${ino}` });
          });
        } catch {
          // a table we cannot walk: skip it
        }
      }
    }
    out.push(...journalStructures(core.pool.read.bind(core.pool), g, core.sb.journalSeq, homeSeal));
  } finally {
    core.pool.close();
  }
  const byKind = new Map<StructKind, Structure[]>();
  for (const s of out) byKind.set(s.kind, [...(byKind.get(s.kind) ?? []), s]);
  return { geometry: g, structures: out, byKind };
}

function dirFields(image: Buffer): Field[] {
  const f: Field[] = [];
  let off = 0;
  while (off < CRC_OFFSET && f.length < 24) {
    const recLen = image.readUInt16LE(off + 4);
    f.push(u32(`record at ${off}: inode`, off), { name: `record at ${off}: length`, offset: off + 4, width: 2 },
      { name: `record at ${off}: name length`, offset: off + 6, width: 1 }, { name: `record at ${off}: type`, offset: off + 7, width: 1 });
    if (recLen < 8 || off + recLen > CRC_OFFSET) break;
    off += recLen;
  }
  return f;
}

/** The journal's transactions from its first block (the ones a replay reads, then older ones). */
function journalStructures(read: (off: number, len: number) => Buffer, g: Geometry, firstSeq: number, homeSeal: Map<number, Seal>): Structure[] {
  const out: Structure[] = [];
  let pos = 0;
  const at = (p: number): number => (g.journalStart + p) * BLOCK_SIZE;
  for (let txCount = 0; pos < g.journalBlocks && txCount < 64; txCount++) {
    const d = read(at(pos), BLOCK_SIZE);
    if (d.readUInt32LE(0) !== 0x444a5844) break;
    const seq = Number(d.readBigUInt64LE(8));
    const blocks: number[] = [];
    const images: Array<[number, number]> = [];
    let p = pos;
    let commit = -1;
    while (p < g.journalBlocks) {
      const b = read(at(p), BLOCK_SIZE);
      const magic = b.readUInt32LE(0);
      if (Number(b.readBigUInt64LE(8)) !== seq) break;
      if (magic === 0x434a5844) {
        commit = at(p);
        p++;
        break;
      }
      if (magic !== 0x444a5844) break;
      const count = Math.min(b.readUInt32LE(16), 508);
      blocks.push(at(p));
      for (let j = 0; j < count && p + 1 + j < g.journalBlocks; j++) {
        const target = Number(b.readBigUInt64LE(24 + j * 8));
        blocks.push(at(p + 1 + j));
        images.push([at(p + 1 + j), target]);
      }
      p += 1 + count;
    }
    if (commit < 0) break;
    const tx = { blocks, commit };
    const replayed = seq >= firstSeq ? 'replayed' : 'stale';
    out.push({ kind: 'journal-descriptor', offset: blocks[0]!, length: BLOCK_SIZE, seal: 'tail', tx, what: `journal descriptor of transaction ${seq} (${replayed})`,
      fields: [u64('sequence', 8), u32('count', 16), u64('target 0', 24), u64('target 1', 32), u64(`target ${images.length - 1}`, 24 + 8 * Math.max(0, images.length - 1))] });
    out.push({ kind: 'journal-commit', offset: commit, length: BLOCK_SIZE, seal: 'tail', tx, what: `journal commit of transaction ${seq} (${replayed})`,
      fields: [u64('sequence', 8), u32('blocks before', 16), u32('checksum', 20)] });
    for (const [off, target] of images) {
      out.push({ kind: 'journal-image', offset: off, length: BLOCK_SIZE, seal: 'none', imageSeal: homeSeal.get(target) ?? 'none', tx,
        what: `journal image of block ${target} in transaction ${seq} (${replayed})`, fields: [u32('word 0', 0), u32('word 1', 4), u64('word 8', 8), u32('word 16', 16)] });
    }
    pos = p;
  }
  return out;
}

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
    b.writeUInt32LE(crc32c(ed.read(offset, INODE_SIZE - 4)));
    ed.write(offset + INODE_SIZE - 4, b);
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
      b[0] ^= 1 << (bit & 7);
      ed.write(at, b);
      bits.push(bit);
    }
    return `flipped bit(s) ${bits.join(', ')} (not resealed)`;
  }
  if (x < 0.75 && s.fields.length) {
    const f = s.fields[Math.floor(r() * s.fields.length)]!;
    const at = s.offset + f.offset;
    const original = readField(ed, at, f.width);
    const values = hostileValues(f, original, g, r);
    const value = values[Math.floor(r() * values.length)]!;
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
  const inv = inventories[base]!;
  const kinds = STRUCT_KINDS.filter((k) => (inv.byKind.get(k)?.length ?? 0) > 0);
  const ed = new PageEditor(bases[base]!);
  const mutations: Mutation[] = [];
  const count = r() < 0.15 ? 2 + Math.floor(r() * 2) : 1;
  for (let m = 0; m < count; m++) {
    // Round robin over the kinds for the first mutation, so every kind gets its share.
    const kind = m === 0 ? kinds[Math.floor(index / bases.length) % kinds.length]! : kinds[Math.floor(r() * kinds.length)]!;
    const list = inv.byKind.get(kind)!;
    const s = list[Math.floor(r() * list.length)]!;
    mutations.push({ structure: s, how: damage(ed, s, inv.geometry, r) });
  }
  return { index, base, mutations, pages: ed.pages };
}

export function describeCase(c: FuzzCase): string {
  return `${c.base === 0 ? 'clean' : 'crashed'} base; ` + c.mutations.map((m) => `${m.structure.what}: ${m.how}`).join('; ');
}
