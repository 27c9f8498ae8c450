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
import { crc32c, crc32ieee } from '../core/format/checksum.js';
import type { Layout } from '../core/format/describe.js';
import { DIR_RECORD } from '../core/format/dir.js';
import { EXTENT, EXTENT_CHAIN, INLINE_EXTENTS, INODE, INODE_CRC, INODE_FLAG_INLINE_SYMLINK, INODE_INLINE } from '../core/format/inode.js';
import {
  JD_COUNT, JD_MAGIC, JD_SEQ, JOURNAL_COMMIT, JOURNAL_COMMIT_MAGIC, JOURNAL_DESCRIPTOR, JOURNAL_DESCRIPTOR_HEADER,
  JOURNAL_DESCRIPTOR_MAGIC, JOURNAL_TARGETS_PER_DESCRIPTOR,
} from '../core/format/journal.js';
import { S_IFDIR, S_IFLNK, S_IFREG } from '../core/format/mode.js';
import { BLOCK_SIZE, CRC_OFFSET, INODE_SIZE, type Geometry } from '../core/format/pool.js';
import { PPT_CONSTANTS } from '../core/format/ppt.js';
import { SUPERBLOCK, SUPERBLOCK_CRC_OFFSET } from '../core/format/superblock.js';
import { XATTR_BLOCK, XATTR_ENTRY, XATTR_HEADER } from '../core/format/xattr.js';
import { openCore } from '../fs/open.js';
import { walkTable } from '../ppt/tables.js';
import { mixSeed, pickOne, rng } from './image.js';

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

/** Fields of a format layout (src/core/format), under their layout names, `base` bytes into the structure. */
function pick(l: Layout, names: string[], base = 0, prefix = ''): Field[] {
  return names.map((n) => {
    const f = l.fields.find((x) => x.name === n);
    if (!f || (f.size !== 1 && f.size !== 2 && f.size !== 4 && f.size !== 8)) throw new Error(`no integer field ${l.name}.${n}`);
    return { name: prefix + n.replace(/_/g, ' '), offset: base + f.offset, width: f.size };
  });
}

/** The integer fields of the superblock but the CRC (the magic, UUID and times are left out). */
const SUPERBLOCK_FIELDS: Field[] = pick(SUPERBLOCK, [
  'version', 'compat', 'incompat', 'ro_compat', 'block_size', 'total_blocks', 'inode_count', 'inode_size',
  'journal_start', 'journal_blocks', 'inode_bitmap_start', 'inode_bitmap_blocks', 'block_bitmap_start', 'block_bitmap_blocks',
  'inode_table_start', 'inode_table_blocks', 'lease_table_start', 'lease_table_blocks', 'data_start', 'root_ino', 'state',
  'journal_seq', 'mount_count', 'page_tables_on', 'msync', 'zeroout_blocks', 'zombie_max_pages',
]);

const inlineExtent = (i: number, names: string[]): Field[] => pick(EXTENT, names, INODE_INLINE + i * EXTENT.size, `extent ${i} `);

/** The integer fields of an inode but times and CRC, and the first, second and last inline extents. */
const INODE_FIELDS: Field[] = [
  ...pick(INODE, ['mode', 'uid', 'gid', 'nlink', 'size', 'blocks', 'generation', 'seq', 'flags', 'extent_count', 'extent_chain',
    'xattr_block', 'ppt_root', 'ppt_level', 'ppt_nodes']),
  ...inlineExtent(0, ['logical', 'count', 'physical']),
  ...inlineExtent(1, ['logical', 'count', 'physical']),
  ...inlineExtent(INLINE_EXTENTS - 1, ['count', 'physical']),
  ...pick(INODE, ['parent', 'rdev']),
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
        const f: Field[] = pick(EXTENT_CHAIN, ['magic', 'ino', 'next', 'count']);
        for (let k = 0; k < 4; k++) f.push(...pick(EXTENT, ['logical', 'count', 'physical'], EXTENT_CHAIN.size + k * EXTENT.size, `entry ${k} `));
        out.push({ kind: 'extent-chain', offset: block(b), length: BLOCK_SIZE, seal: 'tail', fields: f, what: `extent chain block ${b} of inode ${ino}` });
      }
      if (inode.xattrBlock) {
        homeSeal.set(inode.xattrBlock, 'tail');
        out.push({
          kind: 'xattr', offset: block(inode.xattrBlock), length: BLOCK_SIZE, seal: 'tail',
          fields: [...pick(XATTR_BLOCK, ['magic', 'ino', 'count']), ...pick(XATTR_ENTRY, ['name_len', 'value_len'], XATTR_HEADER)],
          what: `xattr block ${inode.xattrBlock} of inode ${ino}`,
        });
      }
      if (inode.type === S_IFREG && inode.pptRoot) {
        try {
          walkTable((b) => core.nodeStore.node(b), core.tableOf(inode), () => undefined, (b, level) => {
            homeSeal.set(b, 'none');
            const node = core.nodeStore.node(b);
            const f: Field[] = [];
            const { PPT_ENTRIES_PER_NODE: entries, PPT_ENTRY_SIZE: size, PPT_ENTRY_PRESENT: present } = PPT_CONSTANTS.values;
            for (let i = 0; i < entries && f.length < 12; i++) if (node.readUInt32LE(i * size) & present) f.push(u64(`entry ${i}`, i * size));
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
    const recLen = image.readUInt16LE(off + DIR_RECORD.off.rec_len);
    f.push(...pick(DIR_RECORD, ['ino', 'rec_len', 'name_len', 'file_type'], off, `record at ${off}: `));
    if (recLen < DIR_RECORD.size || off + recLen > CRC_OFFSET) break;
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
    if (d.readUInt32LE(JD_MAGIC) !== JOURNAL_DESCRIPTOR_MAGIC) break;
    const seq = Number(d.readBigUInt64LE(JD_SEQ));
    const blocks: number[] = [];
    const images: Array<[number, number]> = [];
    let p = pos;
    let commit = -1;
    while (p < g.journalBlocks) {
      const b = read(at(p), BLOCK_SIZE);
      const magic = b.readUInt32LE(JD_MAGIC);
      if (Number(b.readBigUInt64LE(JD_SEQ)) !== seq) break;
      if (magic === JOURNAL_COMMIT_MAGIC) {
        commit = at(p);
        p++;
        break;
      }
      if (magic !== JOURNAL_DESCRIPTOR_MAGIC) break;
      const count = Math.min(b.readUInt32LE(JD_COUNT), JOURNAL_TARGETS_PER_DESCRIPTOR);
      blocks.push(at(p));
      for (let j = 0; j < count && p + 1 + j < g.journalBlocks; j++) {
        const target = Number(b.readBigUInt64LE(JOURNAL_DESCRIPTOR_HEADER + j * 8));
        blocks.push(at(p + 1 + j));
        images.push([at(p + 1 + j), target]);
      }
      p += 1 + count;
    }
    if (commit < 0) break;
    const tx = { blocks, commit };
    const replayed = seq >= firstSeq ? 'replayed' : 'stale';
    out.push({ kind: 'journal-descriptor', offset: blocks[0]!, length: BLOCK_SIZE, seal: 'tail', tx, what: `journal descriptor of transaction ${seq} (${replayed})`,
      fields: [...pick(JOURNAL_DESCRIPTOR, ['seq', 'count']), u64('target 0', JOURNAL_DESCRIPTOR_HEADER), u64('target 1', JOURNAL_DESCRIPTOR_HEADER + 8), u64(`target ${images.length - 1}`, JOURNAL_DESCRIPTOR_HEADER + 8 * Math.max(0, images.length - 1))] });
    out.push({ kind: 'journal-commit', offset: commit, length: BLOCK_SIZE, seal: 'tail', tx, what: `journal commit of transaction ${seq} (${replayed})`,
      fields: pick(JOURNAL_COMMIT, ['seq', 'blocks', 'chain_crc']) });
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
