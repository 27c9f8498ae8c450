/**
 * A file's extent index: sorted, non-overlapping runs logical → physical
 * (block units). Holes are simply absent. This is the file system's own
 * index; page tables (src/ppt) are a second, optional structure built from it.
 */
import type { Segment } from '../ppt/tables.js';
import type { Run } from './alloc.js';

export interface Extent {
  logical: number;
  physical: number;
  count: number;
}


export class ExtentList {
  constructor(public items: Extent[] = []) {}

  get length(): number {
    return this.items.length;
  }

  /** Mapped blocks. */
  get blocks(): number {
    let n = 0;
    for (const e of this.items) n += e.count;
    return n;
  }

  /** Index of the last extent starting at or before `logical`, or -1. */
  private floor(logical: number): number {
    let lo = 0;
    let hi = this.items.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.items[mid]!.logical <= logical) { ans = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return ans;
  }

  /** Physical block of `logical`, or -1 in a hole. */
  lookup(logical: number): number {
    const i = this.floor(logical);
    if (i < 0) return -1;
    const e = this.items[i]!;
    return logical < e.logical + e.count ? e.physical + (logical - e.logical) : -1;
  }

  /** Split [logical, logical+count) into mapped segments and holes. */
  map(logical: number, count: number): Segment[] {
    const out: Segment[] = [];
    let at = logical;
    const end = logical + count;
    let i = this.floor(at);
    if (i < 0) i = 0;
    while (at < end) {
      const e = this.items[i];
      if (!e || e.logical >= end) { out.push({ logical: at, physical: -1, count: end - at }); break; }
      if (e.logical + e.count <= at) { i++; continue; }
      if (e.logical > at) { out.push({ logical: at, physical: -1, count: e.logical - at }); at = e.logical; continue; }
      const n = Math.min(end, e.logical + e.count) - at;
      out.push({ logical: at, physical: e.physical + (at - e.logical), count: n });
      at += n;
      i++;
    }
    return out;
  }

  /** Physical block just after the mapping that precedes `logical` (contiguity goal). */
  goalFor(logical: number): number | undefined {
    const i = this.floor(logical);
    if (i < 0) return undefined;
    const e = this.items[i]!;
    return e.physical + (logical - e.logical);
  }

  /** Map a run (the range must be a hole); merges with neighbours. */
  add(logical: number, physical: number, count: number): void {
    const i = this.floor(logical);
    const prev = i >= 0 ? this.items[i] : undefined;
    const next = this.items[i + 1];
    if (prev && prev.logical + prev.count === logical && prev.physical + prev.count === physical) {
      prev.count += count;
      if (next && next.logical === logical + count && next.physical === physical + count) {
        prev.count += next.count;
        this.items.splice(i + 1, 1);
      }
      return;
    }
    if (next && next.logical === logical + count && next.physical === physical + count) {
      next.logical = logical;
      next.physical = physical;
      next.count += count;
      return;
    }
    this.items.splice(i + 1, 0, { logical, physical, count });
  }

  /** Unmap everything at or past `logical`; returns the physical runs dropped. */
  truncate(logical: number): Run[] {
    const dropped: Run[] = [];
    let i = this.floor(logical);
    if (i >= 0) {
      const e = this.items[i]!;
      if (e.logical + e.count > logical) {
        const keep = logical - e.logical;
        dropped.push({ start: e.physical + keep, count: e.count - keep });
        e.count = keep;
      }
      if (e.count === 0) { this.items.splice(i, 1); i--; }
    }
    for (const e of this.items.splice(i + 1)) dropped.push({ start: e.physical, count: e.count });
    return dropped;
  }

  /** Unmap [logical, logical+count) (holes in it stay holes); returns the physical runs dropped. */
  punch(logical: number, count: number): Run[] {
    const end = logical + count;
    const dropped: Run[] = [];
    const kept: Extent[] = [];
    for (const e of this.items) {
      const eEnd = e.logical + e.count;
      if (eEnd <= logical || e.logical >= end) { kept.push(e); continue; }
      if (e.logical < logical) kept.push({ logical: e.logical, physical: e.physical, count: logical - e.logical });
      const lo = Math.max(e.logical, logical);
      const hi = Math.min(eEnd, end);
      dropped.push({ start: e.physical + (lo - e.logical), count: hi - lo });
      if (eEnd > end) kept.push({ logical: end, physical: e.physical + (end - e.logical), count: eEnd - end });
    }
    this.items = kept;
    return dropped;
  }

  /** Replace the mapping of [logical, logical+count) (fully mapped) by a new physical run. */
  remap(logical: number, count: number, physical: number): Run[] {
    const end = logical + count;
    const old: Run[] = [];
    const kept = new ExtentList();
    for (const e of this.items) {
      const eEnd = e.logical + e.count;
      if (e.logical < logical) kept.add(e.logical, e.physical, Math.min(eEnd, logical) - e.logical);
      const lo = Math.max(e.logical, logical);
      const hi = Math.min(eEnd, end);
      if (hi > lo) old.push({ start: e.physical + (lo - e.logical), count: hi - lo });
      if (eEnd > end) {
        const from = Math.max(e.logical, end);
        kept.add(from, e.physical + (from - e.logical), eEnd - from);
      }
    }
    kept.add(logical, physical, count);
    this.items = kept.items;
    return old;
  }
}
