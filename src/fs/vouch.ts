/**
 * One barrier per fsync after an append: a commit that vouches for its data.
 *
 * A transaction that makes new file bytes reachable (an append, a write into
 * a hole, zeros past an old end) used to need two barriers: the data first,
 * then the commit that points at it. Instead the commit block carries, for
 * each pool byte range the transaction made reachable, its CRC32C read back
 * from the pool, and one barrier after the journal covers data and commit.
 * Replay checks only the last valid transaction (a later one proves the
 * earlier barrier returned) and does not apply it when the pool does not
 * hold those bytes: its barrier never returned, nor did the fsync.
 *
 * The rule that keeps it sound: while the newest durable commit vouches
 * ("unconfirmed"), its bytes must not change before a later commit proves
 * it, or a crash would undo an fsync that returned. So
 *  - every store of the daemon goes past a guard (Pool.setStoreGuard): one
 *    that reaches a vouched byte first confirms (an empty transaction and a
 *    barrier); the next commit, a checkpoint, or a timer ~1 s after the
 *    vouching commit confirm for free or off the request path;
 *  - a library's stores never reach the daemon: the lease table publishes
 *    the vouched blocks (BlockLeases.vouch) before the CRCs are read, and a
 *    client that maps one asks for a confirm (an FSYNC) before storing;
 *    a vouch refused (a live lease reaches a block) makes the commit ordered.
 * Ranges are every byte the transaction stored (in place too: with an
 * ordered commit, all data stored before it was durable with it, and the
 * crash explorer's model holds us to that), [old size, new size) of a file
 * that grew (a later append stores only past them), new blocks whole (their
 * zeros past the end must be zeros after a crash too; the next small append
 * into such a block pays one confirm), and zeros stored past an old end. A
 * commit with no new bytes reachable (overwrites only) vouches for nothing:
 * it is one barrier as before. More than 64 ranges or
 * 1 MiB, a move into a 2 MiB region, fallocate's new blocks: the ordered
 * commit (a barrier before the journal), whose cost a big write amortises.
 */
import createDebug from 'debug';
import type { Pool } from '../media/pool.js';
import { crc32c } from '../core/format/checksum.js';
import { JOURNAL_VOUCH_BYTES_MAX, JOURNAL_VOUCHES_MAX } from '../core/format/journal.js';
import { BLOCK_SIZE } from '../core/format/pool.js';
import { INCOMPAT_VOUCHING_JOURNAL, type Superblock } from '../core/format/superblock.js';
import type { BlockLeases, BlockRun } from './api.js';
import { mergeRuns } from './lease-hold.js';
import type { Inode } from './inode.js';
import type { Journal, Vouch } from './journal.js';

const log = createDebug('daxvm:fs');

/** After a vouching commit, confirm it this long after, off the request path, if nothing else has. */
const CONFIRM_MS = 1000;

/** Distinct ranges noted in one transaction past which it cannot vouch anyway (their merge is over JOURNAL_VOUCHES_MAX). */
const NOTES_MAX = 4 * JOURNAL_VOUCHES_MAX;

/** What the voucher works with (the file system's core is one). */
export interface VouchTarget {
  readonly pool: Pool;
  readonly journal: Journal;
  readonly leases: BlockLeases | undefined;
  readonly commitIntervalMs: number;
  /** Vouching only while its feature flag is durable in the superblock (set at mount: fs/open.ts). */
  readonly sb: Superblock;
  /** Make every home write durable and restart the journal (proves every transaction in it). */
  checkpoint(): void;
}

export interface VouchStats {
  /** Commits that vouched for their data: one barrier. */
  vouchingCommits: number;
  /** Commits with data ordered by a barrier before the journal: two barriers. */
  orderedCommits: number;
  /** Empty transactions + barrier that proved a vouching commit before its bytes changed, or on the timer. */
  confirmBarriers: number;
  /** Of those, on the timer (off the request path). */
  confirmsLazy: number;
}

export class Voucher {
  /** File byte ranges [from, to) the running transaction made reachable, per inode. */
  private readonly reach = new Map<Inode, Array<[number, number]>>();
  /** The running transaction stored ordered data that is not in `reach`. */
  private untracked = false;
  /** Ranges in `reach` beyond each inode's first. */
  private noted = 0;
  /** The newest durable commit's vouches while no later commit proves it. */
  private unconfirmed: Vouch[] | null = null;
  /** Blocks published to the lease table (BlockLeases.vouch) and not yet withdrawn. */
  private published: BlockRun[] = [];
  private timer: NodeJS.Timeout | null = null;
  readonly stats: VouchStats = { vouchingCommits: 0, orderedCommits: 0, confirmBarriers: 0, confirmsLazy: 0 };
  private readonly guard = (offset: number, length: number): void => this.beforeStore(offset, length);

  constructor(private readonly core: VouchTarget) {}

  /** The running transaction makes file bytes [from, to) of `inode` reachable (new blocks, a grown size, zeros past the old end). */
  note(inode: Inode, from: number, to: number): void {
    if (to <= from || this.untracked) return;
    const list = this.reach.get(inode);
    if (!list) {
      this.reach.set(inode, [[from, to]]);
      return;
    }
    // Called at every WRITE: a write that meets the last range noted (a stream of appends, a rewrite) extends it.
    const last = list[list.length - 1]!;
    if (from <= last[1] && last[0] <= to) {
      last[0] = Math.min(last[0], from);
      last[1] = Math.max(last[1], to);
      return;
    }
    list.push([from, to]);
    // Far more than a commit vouches for (JOURNAL_VOUCHES_MAX ranges): stop keeping them, the commit is ordered.
    if (++this.noted > NOTES_MAX) this.noteUntracked();
  }

  /** Ordered data this module does not follow (a move, fallocate's blocks): the next commit is ordered. */
  noteUntracked(): void {
    this.untracked = true;
    this.reach.clear();
  }

  /** A vouching commit is not yet proven. */
  get pending(): boolean {
    return this.unconfirmed !== null;
  }

  /**
   * At commit, with ordered data: the vouches for this transaction of
   * `blocks` journal blocks, or null for an ordered commit (too many or too
   * large, untracked stores, no room for a confirming block, a live lease).
   */
  prepare(blocks: number): Vouch[] | null {
    const ranges = this.untracked ? null : this.poolRanges();
    this.forget();
    const journal = this.core.journal;
    // A confirm must always find room: one block past this transaction.
    if (!ranges || journal.pos + blocks + 1 > journal.capacity) return null;
    if (!(this.core.sb.incompatFeatures & INCOMPAT_VOUCHING_JOURNAL)) return null; // fsck --repair, tools: an older daxvm may read the pool
    if (ranges.length === 0) return [];
    const runs = blockRuns(ranges);
    const leases = this.core.leases;
    if (leases) {
      // Until this commit's barrier returns, the last one's blocks stay published too.
      const all = mergeRuns([...this.published, ...runs]);
      this.published = all;
      // Published before the bytes are read: a client that leases a block from now on sees it.
      if (!leases.vouch(all)) return null;
    }
    return ranges.map(([offset, length]) => ({ offset, length, crc: crc32c(this.core.pool.read(offset, length)) }));
  }

  /** The commit's barrier returned: it vouched for `vouches` (empty: it proves every earlier one). */
  committed(vouches: readonly Vouch[] | null): void {
    if (vouches === null) this.stats.orderedCommits++;
    if (!vouches || vouches.length === 0) {
      this.proven();
      return;
    }
    this.stats.vouchingCommits++;
    this.unconfirmed = [...vouches];
    this.core.pool.setStoreGuard(this.guard);
    if (!this.timer && this.core.commitIntervalMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.unconfirmed) return;
        try {
          this.confirm();
          this.stats.confirmsLazy++;
        } catch (err) {
          log('background confirm failed: %O', err);
        }
      }, CONFIRM_MS);
      this.timer.unref();
    }
  }

  /** Prove the unconfirmed commit: an empty transaction and a barrier (prepare left room for it). */
  confirm(): void {
    if (!this.unconfirmed) return;
    const journal = this.core.journal;
    if (!journal.fits(0)) {
      this.core.checkpoint(); // proves it too (and calls proven)
      return;
    }
    journal.append([]);
    this.core.pool.persistAll();
    this.stats.confirmBarriers++;
    this.proven();
  }

  /** A later durable commit or a checkpoint proves the unconfirmed one: its bytes may change from now on. */
  proven(): void {
    this.unconfirmed = null;
    this.core.pool.setStoreGuard(null);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.published.length) {
      this.published = [];
      this.core.leases?.unvouch();
    }
  }

  /** The running transaction's notes are spent (committed, or made durable by a barrier). */
  forget(): void {
    this.reach.clear();
    this.untracked = false;
    this.noted = 0;
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The pool's store guard: a store that reaches a vouched byte waits for the confirm. */
  private beforeStore(offset: number, length: number): void {
    const u = this.unconfirmed;
    if (!u) return;
    const end = offset + length;
    if (u.some((v) => v.offset < end && offset < v.offset + v.length)) this.confirm();
  }

  /** The running transaction's reachable ranges as merged pool byte ranges; null past the limits. */
  private poolRanges(): Array<[number, number]> | null {
    const out: Array<[number, number]> = [];
    for (const [inode, list] of this.reach) {
      for (const [from, to] of list) {
        const first = Math.floor(from / BLOCK_SIZE);
        const last = Math.floor((to - 1) / BLOCK_SIZE);
        for (const seg of inode.extents.map(first, last - first + 1)) {
          if (seg.physical < 0) continue; // a hole: no pool bytes
          const a = Math.max(from, seg.logical * BLOCK_SIZE);
          const b = Math.min(to, (seg.logical + seg.count) * BLOCK_SIZE);
          const at = seg.physical * BLOCK_SIZE + (a - seg.logical * BLOCK_SIZE);
          out.push([at, at + b - a]);
        }
      }
    }
    out.sort((x, y) => x[0] - y[0]);
    const merged: Array<[number, number]> = [];
    let bytes = 0;
    for (const [a, b] of out) {
      const prev = merged[merged.length - 1];
      if (prev && a <= prev[1]) prev[1] = Math.max(prev[1], b);
      else merged.push([a, b]);
    }
    for (const [a, b] of merged) bytes += b - a;
    if (merged.length > JOURNAL_VOUCHES_MAX || bytes > JOURNAL_VOUCH_BYTES_MAX) return null;
    return merged.map(([a, b]) => [a, b - a]);
  }
}

/** The pool blocks under byte ranges [offset, length], merged. */
function blockRuns(ranges: Array<[number, number]>): BlockRun[] {
  return mergeRuns(ranges.map(([offset, length]) => {
    const start = Math.floor(offset / BLOCK_SIZE);
    return { start, count: Math.ceil((offset + length) / BLOCK_SIZE) - start };
  }));
}
