/**
 * Crash-state exploration: run a scripted workload on the fs layer with the
 * media layer recording every store and every persist barrier, then build
 * the pool images a crash could leave and check each one.
 *
 * The crash model. Stores between two barriers may reach the pool file in
 * any order (the host's page cache writes pages back when it likes); a
 * barrier makes every earlier store in its range durable (persistAll: the
 * whole file; persist(off, len): the pages of that range). The unit is the
 * 4 KiB page: a page written back holds what it held at that moment, so
 * each page that has stores in flight holds a *prefix* of them (in program
 * order) on the media. A crash image for barrier k is: the base image +
 * every store made durable before barrier k + for each page with stores in
 * flight, a prefix of those stores.
 *
 * Which subsets, per barrier (bounded; "page" means a page with stores in
 * flight):
 *   none      no in-flight store (what the media held at the last barrier)
 *   all       every in-flight store (the moment before the barrier)
 *   omit.i    every in-flight store except page i's
 *   torn.i    every in-flight store except the last one of page i
 *   only.i    page i's stores alone
 *   order.j   the first j in-flight stores in program order (a crash at
 *             that instant with nothing reordered)
 *   rand.r    seeded random: each page none, all, or a random prefix
 * The budget (--states) is shared out over the barriers evenly (barriers
 * with fewer distinct images give their share to the others); when a
 * barrier has more deterministic candidates than its share, none and all
 * are kept and the rest sampled with the seed; when it has fewer, random
 * subsets fill the share. Duplicate images are skipped. Stores that leave a
 * page as it already was are dropped first (they cannot make a difference).
 *
 * What each image must satisfy: the pool opens (journal replay, orphan
 * reclaim); the tree equals the model after some operation between the
 * last committed one and the last one started (atomicity, and everything
 * fsync'ed is there); data bytes are the model's or what a later write
 * stored at that offset of that file (nothing the file never owned); fsck
 * of the recovered pool finds nothing (exit 0).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fsck, mkfs, openFileSystem, type FileSystem } from '../fs/index.js';
import { computeGeometry } from '../core/format/pool.js';
import { Pool } from '../media/pool.js';
import type { MediaRecorder } from '../media/types.js';
import { mixSeed, PAGE, rng, scratchDir, WorkImage } from './image.js';
import { compare, observe, type DataWrite, type Snapshot } from './model.js';
import { Driver, WORKLOADS, workloadByName, type Workload } from './workloads.js';

export interface CrashOptions {
  /** Crash states to explore in all (shared out over the workloads). */
  states: number;
  seed: number;
  /** A workload name, or 'all'. */
  workload: string;
  /** Where failing images are kept (default: a new directory in the temp dir). */
  keep?: string;
  /** Explore only this state (as printed with a failure: BARRIER:KIND[.ARG]). */
  replay?: string;
  /** Scratch directory for the working images (default /dev/shm, else the temp dir). */
  scratch?: string;
  /** One line of progress or result. */
  log?: (line: string) => void;
}

export interface CrashFailure {
  workload: string;
  state: string;
  problem: string;
  image: string;
  replay: string;
}

export interface CrashResult {
  explored: number;
  failed: number;
  failures: CrashFailure[];
  workloads: Array<{ name: string; ops: number; stores: number; barriers: number; explored: number; failed: number; seconds: number }>;
}

/** Largest number of failures reported in detail (and images kept) per workload. */
const MAX_KEPT = 5;

interface Piece {
  page: number;
  offset: number;
  bytes: Buffer;
  /** Program order among all stores of the run. */
  seq: number;
}

type Tagged =
  | { kind: 'write'; offset: number; bytes: Buffer; op: number }
  | { kind: 'persist'; offset: number; length: number; op: number };

class TaggingRecorder implements MediaRecorder {
  readonly events: Tagged[] = [];
  op = 0;
  onWrite(offset: number, bytes: Buffer): void {
    this.events.push({ kind: 'write', offset, bytes, op: this.op });
  }
  onPersist(offset: number, length: number): void {
    this.events.push({ kind: 'persist', offset, length, op: this.op });
  }
}

interface Recording {
  workload: Workload;
  base: Buffer;
  events: Tagged[];
  snapshots: Snapshot[];
  writes: DataWrite[][];
  ops: string[];
  journal: [number, number];
  maxFile: number;
  /** What a pool page holds (for replay output). */
  region: (page: number) => string;
}

function record(w: Workload, seed: number, dir: string): Recording {
  const poolPath = path.join(dir, `${w.name}.record.pool`);
  const size = w.poolMiB * 1024 * 1024;
  mkfs(poolPath, { size, force: true });
  const fsys = openFileSystem(poolPath, { commitIntervalMs: 0 });
  const rec = new TaggingRecorder();
  let driver: Driver;
  let base: Buffer;
  try {
    fsys.core.pool.persistAll(); // everything so far is durable: that is the base image
    base = fs.readFileSync(poolPath);
    fsys.core.pool.setRecorder(rec);
    driver = new Driver(fsys, seed, (op) => { rec.op = op; });
    w.run(driver);
    rec.op = driver.opCount + 1;
  } finally {
    try {
      fsys.core.pool.setRecorder(null);
      fsys.close();
    } catch {
      // closed by the workload
    }
    fs.rmSync(poolPath, { force: true });
  }
  const g = computeGeometry(size);
  let maxFile = 0;
  for (const s of driver.snapshots) for (const n of s.nodes.values()) maxFile = Math.max(maxFile, n.data.length);
  return {
    workload: w, base, events: rec.events, snapshots: driver.snapshots, writes: driver.writes, ops: driver.ops,
    journal: [g.journalStart * PAGE, (g.journalStart + g.journalBlocks) * PAGE], maxFile,
    region: (p) => {
      if (p === 0) return 'superblock';
      if (p === 1) return 'backup superblock';
      if (p < g.inodeBitmapStart) return `journal block ${p - g.journalStart}`;
      if (p < g.blockBitmapStart) return 'inode bitmap';
      if (p < g.inodeTableStart) return 'block bitmap';
      if (p < g.leaseTableStart) return `inode table (inodes ${(p - g.inodeTableStart) * 16}..${(p - g.inodeTableStart) * 16 + 15})`;
      if (p < g.dataStart) return 'lease table';
      return 'data area';
    },
  };
}

/** One barrier's crash point: the in-flight stores and the window of model states allowed. */
interface Barrier {
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
class Timeline {
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
    if (offset < je && offset + bytes.length > js) this.journalSinceFull = true;
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

type Descriptor = Map<number, number>;

function signature(d: Descriptor): string {
  return [...d].filter(([, c]) => c > 0).sort((a, b) => a[0] - b[0]).map(([p, c]) => `${p}:${c}`).join(',');
}

/** The subset a state name stands for (null: not valid at this barrier). */
function descriptorFor(b: Barrier, kind: string, arg: number, seed: number): Descriptor | null {
  const d: Descriptor = new Map();
  const all = (): void => b.pages.forEach((p, i) => d.set(p, b.counts[i]!));
  switch (kind) {
    case 'none': return d;
    case 'all': all(); return d;
    case 'omit':
      if (arg < 0 || arg >= b.pages.length) return null;
      all(); d.set(b.pages[arg]!, 0); return d;
    case 'torn':
      if (arg < 0 || arg >= b.pages.length || b.counts[arg]! < 2) return null;
      all(); d.set(b.pages[arg]!, b.counts[arg]! - 1); return d;
    case 'only':
      if (arg < 0 || arg >= b.pages.length) return null;
      d.set(b.pages[arg]!, b.counts[arg]!); return d;
    case 'order':
      if (arg < 1 || arg >= b.order.length) return null;
      for (let i = 0; i < arg; i++) d.set(b.order[i]!, (d.get(b.order[i]!) ?? 0) + 1);
      return d;
    case 'rand': {
      const r = rng(mixSeed(seed, b.index, arg, 0xc4a5));
      b.pages.forEach((p, i) => {
        const c = b.counts[i]!;
        const x = r();
        d.set(p, x < 0.4 ? 0 : x < 0.8 ? c : Math.floor(r() * (c + 1)));
      });
      return d;
    }
    default: return null;
  }
}

/** Deterministic candidates of a barrier, beyond none and all. */
function deterministicStates(b: Barrier): string[] {
  const out: string[] = [];
  const n = b.pages.length;
  if (n >= 2) for (let i = 0; i < n; i++) out.push(`omit.${i}`);
  for (let i = 0; i < n; i++) if (b.counts[i]! >= 2) out.push(`torn.${i}`);
  if (n >= 3) for (let i = 0; i < n; i++) out.push(`only.${i}`);
  for (let j = 1; j < b.order.length; j++) out.push(`order.${j}`);
  return out;
}

/** The states explored at a barrier, within `quota`, deduplicated. */
function statesFor(b: Barrier, quota: number, seed: number): Array<{ name: string; d: Descriptor }> {
  const out: Array<{ name: string; d: Descriptor }> = [];
  const seen = new Set<string>();
  const tryAdd = (name: string): void => {
    if (out.length >= quota) return;
    const [kind, arg] = name.split('.');
    const d = descriptorFor(b, kind!, Number(arg ?? 0), seed);
    if (!d) return;
    const sig = signature(d);
    if (seen.has(sig)) return;
    seen.add(sig);
    out.push({ name: `${b.index}:${name}`, d });
  };
  if (!b.afterFull || b.index === 0) tryAdd('none');
  else seen.add(''); // the previous barrier's "all" was this image
  tryAdd('all');
  let rest = deterministicStates(b);
  if (rest.length > quota - out.length) {
    const r = rng(mixSeed(seed, b.index, 0x5a3));
    for (let i = rest.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [rest[i], rest[j]] = [rest[j]!, rest[i]!];
    }
    rest = rest.slice(0, quota - out.length);
  }
  for (const s of rest) tryAdd(s);
  // Random subsets fill the share; give up after a run of duplicates.
  for (let r = 0, misses = 0; out.length < quota && b.pages.length >= 2 && misses < 50; r++) {
    const before = out.length;
    tryAdd(`rand.${r}`);
    misses = out.length > before ? 0 : misses + 1;
  }
  return out;
}

/** How many distinct images a barrier can give at most (Infinity: plenty). */
function capacity(b: Barrier): number {
  if (b.pages.length >= 2) return Infinity;
  return b.pages.length === 0 ? 1 : 1 + b.counts[0]!;
}

function shareOut(barriers: Barrier[], budget: number): number[] {
  const quota = new Array<number>(barriers.length).fill(0);
  const order = barriers.map((b, i) => i).sort((a, b) => capacity(barriers[a]!) - capacity(barriers[b]!));
  let left = budget;
  order.forEach((i, k) => {
    const share = Math.max(1, Math.floor(left / (order.length - k)));
    const q = Math.min(capacity(barriers[i]!), share);
    quota[i] = q;
    left -= q;
  });
  return quota;
}

function survey(rec: Recording, img: WorkImage): Barrier[] {
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

/** Every page some store of the run touched. */
function pagesWritten(rec: Recording): number[] {
  const pages = new Set<number>();
  for (const e of rec.events) {
    if (e.kind !== 'write' || e.bytes.length === 0) continue;
    const last = Math.floor((e.offset + e.bytes.length - 1) / PAGE);
    for (let p = Math.floor(e.offset / PAGE); p <= last; p++) pages.add(p);
  }
  return [...pages];
}

export function runCrashExplorer(opts: CrashOptions): CrashResult {
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const chosen = opts.workload === 'all' ? WORKLOADS : [workloadByName(opts.workload)].filter((w): w is Workload => !!w);
  if (chosen.length === 0) throw new Error(`no workload ${JSON.stringify(opts.workload)} (there are: ${WORKLOADS.map((w) => w.name).join(', ')}, all)`);
  const scratch = scratchDir('daxvm-crash-', opts.scratch);
  const result: CrashResult = { explored: 0, failed: 0, failures: [], workloads: [] };
  let keepDir = opts.keep;
  const keepPath = (name: string): string => {
    if (!keepDir) keepDir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'daxvm-crash-failures-'));
    fs.mkdirSync(keepDir, { recursive: true });
    return path.join(keepDir, name);
  };
  if (!opts.replay) {
    log('crash states: a page with stores in flight holds a prefix of them; per barrier: none, all, omit one page, tear one page\'s last store, only one page, program-order prefixes, seeded random page prefixes (bounded by --states, duplicates skipped)');
  }
  try {
    let left = opts.states;
    chosen.forEach((w, wi) => {
      const budget = Math.floor(left / (chosen.length - wi));
      const started = Date.now();
      const rec = record(w, opts.seed, scratch);
      const img = new WorkImage(path.join(scratch, `${w.name}.image.pool`), Buffer.from(rec.base));
      const stats = { name: w.name, ops: rec.ops.length, stores: 0, barriers: 0, explored: 0, failed: 0, seconds: 0 };
      try {
        const barriers = survey(rec, img);
        stats.stores = rec.events.filter((e) => e.kind === 'write').length;
        stats.barriers = barriers.length;
        const replay = opts.replay ? parseReplay(opts.replay) : null;
        const quota = replay ? barriers.map((b) => (b.index === replay.barrier ? 1 : 0)) : shareOut(barriers, budget);
        explore(rec, img, barriers, quota, opts, replay, (state, problem) => {
          stats.failed++;
          result.failed++;
          const cmd = `npx daxvm test-crash --workload ${w.name} --seed ${opts.seed} --replay ${state}`;
          let image = '';
          if (stats.failed <= MAX_KEPT || replay) {
            image = keepPath(`${w.name}-seed${opts.seed}-${state.replace(':', '-')}.pool`);
            img.saveAs(image);
            log(`FAILED ${w.name} ${state}: ${problem}`);
            log(`  image kept: ${image}`);
            log(`  replay: ${cmd}`);
          }
          result.failures.push({ workload: w.name, state, problem, image, replay: cmd });
        }, () => { stats.explored++; result.explored++; }, log);
      } finally {
        img.close();
        fs.rmSync(img.path, { force: true });
      }
      stats.seconds = (Date.now() - started) / 1000;
      if (opts.replay && stats.explored === 0) throw new Error(`--replay ${opts.replay}: workload ${w.name} has ${stats.barriers} barriers (0..${stats.barriers - 1})`);
      left -= stats.explored;
      result.workloads.push(stats);
      if (!opts.replay || stats.explored) {
        log(`workload ${w.name}: ${stats.ops} ops, ${stats.stores} stores, ${stats.barriers} barriers; ${stats.explored} states explored, ${stats.failed} failed (${stats.seconds.toFixed(1)} s)`);
      }
    });
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  log(`crash states: ${result.explored} explored, ${result.failed} failed`);
  return result;
}

function parseReplay(s: string): { barrier: number; name: string } {
  const m = /^(\d+):(none|all|(omit|torn|only|order|rand)\.\d+)$/.exec(s);
  if (!m) throw new Error(`--replay ${JSON.stringify(s)}: expected BARRIER:KIND[.N], as printed with a failure (e.g. 17:omit.3)`);
  return { barrier: Number(m[1]), name: m[2]! };
}

function explore(
  rec: Recording, img: WorkImage, barriers: Barrier[], quota: number[], opts: CrashOptions,
  replay: { barrier: number; name: string } | null,
  onFail: (state: string, problem: string) => void, onExplored: () => void, log: (line: string) => void,
): void {
  const t = new Timeline(rec, img);
  for (const b of barriers) {
    const at = t.next();
    if (!at || at.event !== b.event) throw new Error('the event stream changed between passes');
    const q = quota[b.index] ?? 0;
    if (q > 0) {
      let states = statesFor(b, q, opts.seed);
      if (replay) {
        const [kind, arg] = replay.name.split('.');
        const d = descriptorFor(b, kind!, Number(arg ?? 0), opts.seed);
        if (!d) throw new Error(`--replay ${replay.barrier}:${replay.name}: no such state at that barrier (${b.pages.length} pages, ${b.order.length} stores in flight)`);
        const state = { name: `${b.index}:${replay.name}`, d };
        states = [state];
        log(`replaying ${rec.workload.name} ${state.name}: ${b.label}; ${b.pages.length} page(s) with ${b.order.length} store(s) in flight; model window: after op ${b.lo}..${b.hi}`);
        b.pages.forEach((p, i) => log(`  page ${i}: pool block ${p} (${rec.region(p)}): ${d.get(p) ?? 0} of ${b.counts[i]} store(s) reach the media`));
        for (let op = Math.max(1, b.lo - 2); op <= Math.min(rec.ops.length, b.hi + 1); op++) log(`  op ${op}: ${rec.ops[op - 1]}`);
      }
      for (const s of states) {
        img.restore();
        for (const [page, count] of s.d) if (count > 0) img.writePage(page, t.pageWith(page, count));
        const problem = checkImage(rec, img, b, replay ? log : undefined);
        if (problem) {
          img.restore();
          for (const [page, count] of s.d) if (count > 0) img.writePage(page, t.pageWith(page, count));
          onFail(s.name, problem);
        }
        onExplored();
      }
      img.restore();
    }
    if (at.barrierOp === null) break;
    t.applyBarrier();
  }
}

/** Open, compare with the model, fsck: null when the image passes, else what is wrong. */
function checkImage(rec: Recording, img: WorkImage, b: Barrier, verbose?: (line: string) => void): string | null {
  Pool.setDefaultRecorder(img);
  let fsys: FileSystem | null = null;
  try {
    try {
      fsys = openFileSystem(img.path, { commitIntervalMs: 0, noLock: true });
    } catch (err) {
      return `recovery failed: ${describe(err)}`;
    }
    let problem: string | null = null;
    try {
      const obs = observe(fsys, rec.maxFile);
      problem = matchWindow(rec, b, obs, verbose);
    } catch (err) {
      problem = `reading the recovered tree failed: ${describe(err)}`;
    }
    if (problem) return problem;
    try {
      fsys.sync();
    } catch (err) {
      return `sync after recovery failed: ${describe(err)}`;
    }
    const report = fsck(img.path);
    if (report.exitCode !== 0) {
      return `fsck after recovery exits ${report.exitCode}: ${report.error ?? report.problems.map((p) => `${p.kind}: ${p.message}`).slice(0, 4).join('; ')}`;
    }
    try {
      fsys.close();
      fsys = null;
    } catch (err) {
      return `unmount after recovery failed: ${describe(err)}`;
    }
    return null;
  } finally {
    if (fsys) {
      try {
        fsys.close();
      } catch {
        try {
          fsys.core.pool.close();
        } catch {
          // already closed
        }
      }
    }
    Pool.setDefaultRecorder(null);
  }
}

/** The recovered tree must be the model after some op in [lo, hi]. */
function matchWindow(rec: Recording, b: Barrier, obs: ReturnType<typeof observe>, verbose?: (line: string) => void): string | null {
  let firstDiff = '';
  for (let j = b.hi; j >= b.lo; j--) {
    const later: DataWrite[] = [];
    for (let i = j + 1; i <= b.hi; i++) later.push(...rec.writes[i]!);
    const diff = compare(rec.snapshots[j]!, obs, later);
    if (diff === null) return null;
    verbose?.(`  vs the model after op ${j}: ${diff}`);
    if (j === b.hi) firstDiff = diff;
    if (j === b.lo) {
      const span = b.lo === b.hi ? `after op ${b.lo}` : `after any op from ${b.lo} to ${b.hi}`;
      return `the recovered tree is not the model ${span} (${b.label}): vs op ${b.hi} (${rec.ops[b.hi - 1] ?? 'start'}): ${firstDiff}` +
        (b.lo !== b.hi ? `; vs op ${b.lo} (${rec.ops[b.lo - 1] ?? 'start'}): ${diff}` : '');
    }
  }
  return 'empty model window';
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const where = err.stack?.split('\n').slice(1, 3).map((l) => l.trim()).join(' < ') ?? '';
    return `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}${where ? ` [${where}]` : ''}`;
  }
  return String(err);
}
