/**
 * Blocks held back for leases: a block a file has dropped, whose
 * transaction is durable, is reusable unless a live lease (a mapping of the
 * pool in another process, see BlockLeases in api.ts) covers it; then it is
 * kept here, out of the free space, until the lease is gone.
 */
import type { BlockLeases, BlockRun } from './api.js';

export class LeaseHold {
  /** Freed on media, not allocatable: a lease covers them. Sorted by start. */
  private held: BlockRun[] = [];

  constructor(private readonly leases: BlockLeases) {}

  get blocks(): number {
    let n = 0;
    for (const r of this.held) n += r.count;
    return n;
  }

  /**
   * Of `runs` (and, with `recheck`, of the blocks held so far), what no live
   * lease covers goes to `release`; the rest is held. One scan of the leases.
   */
  settle(runs: BlockRun[], release: (run: BlockRun) => void, recheck = false): void {
    if (recheck && this.held.length) {
      runs = [...runs, ...this.held];
      this.held = [];
    }
    if (runs.length === 0) return;
    const live = this.leases.live();
    if (live.length === 0) {
      for (const r of runs) release(r);
      return;
    }
    for (const r of runs) split(r, live, (part, covered) => (covered ? this.hold(part) : release(part)));
  }

  /** Let go of the held blocks no live lease covers any more. */
  recheck(release: (run: BlockRun) => void): void {
    this.settle([], release, true);
  }

  /**
   * At mount, before anything is freed: the blocks live leases cover that
   * the file system has free (a daemon that died held them back) become held.
   * `take(start, count)` marks them in use and answers how many were free.
   */
  adopt(isFree: (block: number) => boolean, take: (run: BlockRun) => void): number {
    let adopted = 0;
    for (const r of this.leases.live()) {
      for (let b = r.start; b < r.start + r.count; ) {
        if (!isFree(b)) {
          b++;
          continue;
        }
        let e = b + 1;
        while (e < r.start + r.count && isFree(e)) e++;
        const run = { start: b, count: e - b };
        take(run);
        this.hold(run);
        adopted += run.count;
        b = e;
      }
    }
    return adopted;
  }

  private hold(run: BlockRun): void {
    let i = this.held.length;
    while (i > 0 && this.held[i - 1]!.start > run.start) i--;
    this.held.splice(i, 0, { start: run.start, count: run.count });
  }
}

/** Cut `run` by the sorted, disjoint `live` ranges: each part once, covered or not. */
function split(run: BlockRun, live: BlockRun[], part: (r: BlockRun, covered: boolean) => void): void {
  let at = run.start;
  const end = run.start + run.count;
  for (const l of live) {
    if (l.start + l.count <= at) continue;
    if (l.start >= end) break;
    if (l.start > at) {
      part({ start: at, count: l.start - at }, false);
      at = l.start;
    }
    const to = Math.min(end, l.start + l.count);
    part({ start: at, count: to - at }, true);
    at = to;
    if (at >= end) return;
  }
  if (at < end) part({ start: at, count: end - at }, false);
}

/** Runs sorted by start, the ones that touch or overlap merged (a new array; the input is left as it was). */
export function mergeRuns(runs: readonly BlockRun[]): BlockRun[] {
  const sorted = [...runs].sort((a, b) => a.start - b.start);
  const out: BlockRun[] = [];
  for (const r of sorted) {
    const prev = out[out.length - 1];
    if (prev && r.start <= prev.start + prev.count) prev.count = Math.max(prev.count, r.start + r.count - prev.start);
    else out.push({ ...r });
  }
  return out;
}
