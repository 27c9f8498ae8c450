/**
 * Where every metadata structure of a pool lies (damage.ts says how to
 * damage it).
 *
 * inventory() opens a pool read-only (with its journal replayed in memory)
 * and lists each structure: its byte range in the pool, its fields (offset,
 * width, from the layouts of src/core/format), and how its checksum is
 * sealed.
 */
import type { Layout } from '../core/format/describe.js';
import { DIR_RECORD } from '../core/format/dir.js';
import { EXTENT, EXTENT_CHAIN, INLINE_EXTENTS, INODE, INODE_FLAG_INLINE_SYMLINK, INODE_INLINE } from '../core/format/inode.js';
import {
  JD_COUNT, JD_MAGIC, JD_SEQ, JOURNAL_COMMIT, JOURNAL_COMMIT_MAGIC, JOURNAL_DESCRIPTOR, JOURNAL_DESCRIPTOR_HEADER,
  JOURNAL_DESCRIPTOR_MAGIC, JOURNAL_TARGETS_PER_DESCRIPTOR,
} from '../core/format/journal.js';
import { S_IFDIR, S_IFLNK, S_IFREG } from '../core/format/mode.js';
import { BLOCK_SIZE, CRC_OFFSET, INODE_SIZE, type Geometry } from '../core/format/pool.js';
import { PPT_CONSTANTS } from '../core/format/ppt.js';
import { SUPERBLOCK } from '../core/format/superblock.js';
import { XATTR_BLOCK, XATTR_ENTRY, XATTR_HEADER } from '../core/format/xattr.js';
import { openCore } from '../fs/open.js';
import { walkTable } from '../ppt/tables.js';

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
