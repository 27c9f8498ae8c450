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
 *
 * The parts: crash-record.ts (the recorded run), crash-timeline.ts (the
 * barriers and what is in flight at each), crash-states.ts (the subsets
 * explored at a barrier); this file explores and checks the images.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fsck, openFileSystem, type FileSystem } from '../fs/index.js';
import { Pool } from '../media/pool.js';
import { record, type Recording } from './crash-record.js';
import { descriptorFor, parseReplay, shareOut, statesFor } from './crash-states.js';
import { survey, Timeline, type Barrier } from './crash-timeline.js';
import { closeQuietly, scratchDir, WorkImage } from './image.js';
import { compare, observe, type DataWrite } from './model.js';
import { WORKLOADS, workloadByName, type Workload } from './workloads.js';

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
    if (fsys) closeQuietly(fsys);
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
