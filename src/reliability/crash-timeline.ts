/**
 * Crash exploration: the timeline of a recording. It walks the events,
 * makes stores durable at barriers (on the working image's reference) and
 * tracks, per page, the stores in flight; survey() turns it into the list
 * of barriers, each with its in-flight pages and its window of model states.
 */
import { PAGE, type WorkImage } from './image.js';
import { pagesWritten, type Recording } from './crash-record.js';
import { JC_BLOCKS, JC_MAGIC, JOURNAL_COMMIT_MAGIC } from '../core/format/journal.js';

/**
 * A commit block alone, closing no block (an empty transaction): the
 * confirm of a vouching commit (src/fs/vouch.ts), which commits nothing of
 * the running transaction, so the barrier after it is no commit point.
 */
function emptyCommit(bytes: Buffer): boolean {
  return bytes.length === PAGE && bytes.readUInt32LE(JC_MAGIC) === JOURNAL_COMMIT_MAGIC && bytes.readUInt32LE(JC_BLOCKS) === 0;
}

interface Piece {
  page: number;
  offset: number;
  bytes: Buffer;
  /** Program order among all stores of the run. */
  seq: number;
}

/** One barrier's crash point: the in-flight stores and the window of model states allowed. */
export interface Barrier {
  index: number;
  /** Event index of the barrier (events.length for the end of the run). */
  event: number;
  /** Pages with stores in flight, ascending, and how many stores each. */
  pages: number[];
  counts: number[];
  /** Page of each in-flight store, in program order. */
  order: number[];
  /** The recovered tree must equal snapshots[lo..hi]. */
  lo: number;
  hi: number;
  /** The previous barrier covered the whole pool (so "none" repeats its "all"). */
  afterFull: boolean;
  label: string;
}

/** Walks the events: makes stores durable at barriers, tracks what is in flight. */
export class Timeline {
  readonly inflight = new Map<number, Piece[]>();
  /** Current content of pages with stores in flight. */
  private readonly issued = new Map<number, Buffer>();
  pos = 0;
  private seq = 0;
  private journalSinceFull = false;
  lastCommitOp = 0;
  lastFull = true;

  constructor(private readonly rec: Recording, private readonly img: WorkImage) {}

  /** Advance to the next barrier (or the end); returns false when past the end. */
  next(): { event: number; barrierOp: number | null } | null {
    const ev = this.rec.events;
    while (this.pos < ev.length) {
      const e = ev[this.pos]!;
      if (e.kind === 'persist') return { event: this.pos, barrierOp: e.op };
      this.addWrite(e.offset, e.bytes);
      this.pos++;
    }
    if (this.pos === ev.length) return { event: this.pos, barrierOp: null };
    return null;
  }

  private addWrite(offset: number, bytes: Buffer): void {
    const [js, je] = this.rec.journal;
    if (offset < je && offset + bytes.length > js && !emptyCommit(bytes)) this.journalSinceFull = true;
    let done = 0;
    while (done < bytes.length) {
      const at = offset + done;
      const page = Math.floor(at / PAGE);
      const inPage = at - page * PAGE;
      const n = Math.min(bytes.length - done, PAGE - inPage);
      const piece = bytes.subarray(done, done + n);
      let cur = this.issued.get(page);
      const view = cur ?? this.img.refPage(page);
      if (!view.subarray(inPage, inPage + n).equals(piece)) {
        if (!cur) {
          cur = Buffer.from(view);
          this.issued.set(page, cur);
        }
        piece.copy(cur, inPage);
        const list = this.inflight.get(page) ?? [];
        list.push({ page, offset: inPage, bytes: piece, seq: this.seq++ });
        this.inflight.set(page, list);
      }
      done += n;
    }
  }

  /** Apply the barrier at `pos` (the stores it covers become the reference) and step past it. */
  applyBarrier(): void {
    const e = this.rec.events[this.pos]!;
    if (e.kind !== 'persist') throw new Error('not at a barrier');
    const full = e.offset === 0 && e.length >= this.img.size;
    const first = Math.floor(e.offset / PAGE);
    const last = Math.floor((e.offset + e.length - 1) / PAGE);
    for (const page of [...this.inflight.keys()]) {
      if (page < first || page > last) continue;
      this.img.setRef(page, this.issued.get(page)!);
      this.inflight.delete(page);
      this.issued.delete(page);
    }
    if (full) {
      if (this.journalSinceFull) this.lastCommitOp = e.op;
      this.journalSinceFull = false;
    }
    this.lastFull = full;
    this.pos++;
  }

  /** The page of each in-flight store, in program order. */
  order(): number[] {
    const all: Piece[] = [];
    for (const list of this.inflight.values()) all.push(...list);
    return all.sort((a, b) => a.seq - b.seq).map((p) => p.page);
  }

  /** The page image with the first `count` in-flight stores applied. */
  pageWith(page: number, count: number): Buffer {
    const img = Buffer.from(this.img.refPage(page));
    for (const s of this.inflight.get(page)?.slice(0, count) ?? []) s.bytes.copy(img, s.offset);
    return img;
  }
}

/** A first pass over the whole timeline: every barrier (and the end of the run) as a crash point. */
export function survey(rec: Recording, img: WorkImage): Barrier[] {
  const t = new Timeline(rec, img);
  const out: Barrier[] = [];
  for (;;) {
    const at = t.next();
    if (!at) break;
    const pages = [...t.inflight.keys()].sort((a, b) => a - b);
    const order = t.order();
    out.push({
      index: out.length, event: at.event, pages, counts: pages.map((p) => t.inflight.get(p)!.length), order,
      lo: Math.max(0, t.lastCommitOp - 1), hi: at.barrierOp === null ? rec.ops.length : Math.min(rec.ops.length, at.barrierOp),
      afterFull: t.lastFull, label: at.barrierOp === null ? 'end of run' : `barrier in op ${at.barrierOp} (${rec.ops[at.barrierOp - 1] ?? 'after the last op'})`,
    });
    if (at.barrierOp === null) break;
    t.applyBarrier();
  }
  // Restore the reference image for the exploration pass.
  img.ref.set(rec.base);
  img.restore(pagesWritten(rec));
  return out;
}
