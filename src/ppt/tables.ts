/**
 * Build, update, free and walk a file's persistent page table from its
 * extent index. The table is always derived: the extent index is the truth,
 * and after every change the affected entries are made equal to it.
 *
 * A 2 MiB range mapped by one run whose pool block is 2 MiB-aligned becomes
 * one huge PMD entry; a 1 GiB range likewise one huge PUD entry. Anything
 * else gets a node below. Empty ranges have no entry and no node.
 */
import { blocksPerEntry, clearEntry, ENTRIES_PER_NODE, levelForSize, readEntry, writeEntry } from '../core/format/ppt.js';

/** Where the table's nodes live: the file system's metadata store. */
export interface NodeStore {
  /** The current image of a node block. */
  node(block: number): Buffer;
  /** A new, zeroed node block. */
  allocNode(): number;
  freeNode(block: number): void;
  /** The node's image changed. */
  dirty(block: number): void;
}

/** A piece of a logical range: mapped (physical >= 0) or a hole (physical = -1). */
export interface Segment {
  logical: number;
  physical: number;
  count: number;
}

/** What the table maps: the file's extent index. */
export interface ExtentSource {
  map(logical: number, count: number): Segment[];
  readonly length: number;
}

export interface TableRef {
  root: number;
  level: number;
  nodes: number;
}

export const NO_TABLE: TableRef = { root: 0, level: 0, nodes: 0 };

/** Largest level whose entries may be huge (PUD; a P4D entry never is). */
const MAX_HUGE_LEVEL = 3;

class Builder {
  nodes: number;
  constructor(private readonly store: NodeStore, private readonly extents: ExtentSource, nodes: number) {
    this.nodes = nodes;
  }

  alloc(): number {
    this.nodes++;
    return this.store.allocNode();
  }

  freeSubtree(block: number, level: number): void {
    if (level > 1) {
      const node = this.store.node(block);
      for (let i = 0; i < ENTRIES_PER_NODE; i++) {
        const e = readEntry(node, i);
        if (e.present && !e.huge) this.freeSubtree(e.block, level - 1);
      }
    }
    this.store.freeNode(block);
    this.nodes--;
  }

  /** Make the entries of `block` (a node at `level` whose entry 0 maps `base`) right for [from, to). */
  sync(block: number, level: number, base: number, from: number, to: number): void {
    const node = this.store.node(block);
    const span = blocksPerEntry(level);
    const first = Math.max(0, Math.floor((from - base) / span));
    const last = Math.min(ENTRIES_PER_NODE - 1, Math.floor((to - 1 - base) / span));
    let changed = false;
    for (let i = first; i <= last; i++) {
      const start = base + i * span;
      const cur = readEntry(node, i);
      const segs = this.extents.map(start, span);
      const mapped = segs.filter((s) => s.physical >= 0);
      const only = mapped.length === 1 ? mapped[0] : undefined;
      if (level === 1) {
        const want = mapped[0]?.physical ?? -1;
        if (want < 0 && cur.present) { clearEntry(node, i); changed = true; }
        if (want >= 0 && (!cur.present || cur.block !== want)) { writeEntry(node, i, want, false); changed = true; }
        continue;
      }
      if (only && segs.length === 1 && only.physical % span === 0 && level <= MAX_HUGE_LEVEL) {
        if (cur.present && !cur.huge) this.freeSubtree(cur.block, level - 1);
        if (!cur.present || !cur.huge || cur.block !== only.physical) {
          writeEntry(node, i, only.physical, true);
          changed = true;
        }
        continue;
      }
      if (mapped.length === 0) {
        if (cur.present && !cur.huge) this.freeSubtree(cur.block, level - 1);
        if (cur.present) { clearEntry(node, i); changed = true; }
        continue;
      }
      let child = cur.present && !cur.huge ? cur.block : -1;
      let lo = Math.max(from, start);
      let hi = Math.min(to, start + span);
      if (child < 0) {
        child = this.alloc();
        writeEntry(node, i, child, false);
        changed = true;
        lo = start;
        hi = start + span;
      }
      this.sync(child, level - 1, start, lo, hi);
    }
    if (changed) this.store.dirty(block);
  }
}

/**
 * Bring a file's table in step with its extents after blocks in logical
 * [from, to) changed (or the size changed the level). Returns the new ref.
 */
export function syncTable(store: NodeStore, ref: TableRef, extents: ExtentSource, size: number, from: number, to: number): TableRef {
  const builder = new Builder(store, extents, ref.nodes);
  const level = levelForSize(size);
  if (extents.length === 0 || level === 0) {
    if (ref.root) builder.freeSubtree(ref.root, ref.level);
    return { ...NO_TABLE };
  }
  const capacity = blocksPerEntry(level) * ENTRIES_PER_NODE;
  let root = ref.root;
  if (!root || ref.level !== level) {
    if (root) builder.freeSubtree(root, ref.level);
    root = builder.alloc();
    builder.sync(root, level, 0, 0, capacity);
  } else if (to > from) {
    builder.sync(root, level, 0, Math.max(0, from), Math.min(capacity, to));
  }
  return { root, level, nodes: builder.nodes };
}

/** Free the whole table. */
export function freeTable(store: NodeStore, ref: TableRef): void {
  if (ref.root) new Builder(store, { map: () => [], length: 0 }, ref.nodes).freeSubtree(ref.root, ref.level);
}

/** A leaf of a table walk: `count` blocks from `logical` map to `physical` onward. */
export interface Leaf {
  logical: number;
  physical: number;
  count: number;
  /** 1 = PTE, 2 = huge PMD, 3 = huge PUD. */
  level: number;
}

/** Visit every node and every leaf of a table (fsck, info, the library). */
export function walkTable(
  read: (block: number) => Buffer,
  ref: TableRef,
  onLeaf: (leaf: Leaf) => void,
  onNode: (block: number, level: number) => void = () => undefined,
): void {
  const visit = (block: number, level: number, base: number): void => {
    onNode(block, level);
    const node = read(block);
    const span = blocksPerEntry(level);
    for (let i = 0; i < ENTRIES_PER_NODE; i++) {
      const e = readEntry(node, i);
      if (!e.present) continue;
      const logical = base + i * span;
      if (level === 1 || e.huge) onLeaf({ logical, physical: e.block, count: span, level });
      else visit(e.block, level - 1, logical);
    }
  };
  if (ref.root) visit(ref.root, ref.level, 0);
}
