/**
 * The hostile-image fuzzer: builds a valid pool with a varied tree, damages
 * its metadata structures case by case (structures.ts) and checks that
 * fsck, mount and fsck --repair survive each damaged image (fuzz-check.ts).
 *
 * Two base images: the pool unmounted cleanly, and the same pool copied
 * mid-work (mounted state, transactions in the journal to replay, a file
 * unlinked while open). Cases alternate between them and go round robin
 * over the structure kinds. Cases run in worker processes (one per core by
 * default), each with its own working image; a case that runs past its
 * time limit is a hang: its worker is killed and replaced.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkfs, openFileSystem, ROOT_INO, S_IFCHR, S_IFIFO, XATTR_CREATE } from '../fs/index.js';
import { mixSeed, patternBytes, scratchDir, WorkImage } from './image.js';
import { describeCase, makeCase, type FuzzCase } from './damage.js';
import { inventory, STRUCT_KINDS } from './structures.js';
import type { CaseOutcome } from './fuzz-check.js';

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** Run only this case (as printed with a failure). */
  only?: number;
  /** Worker processes (default: the number of cores, at most 4). */
  workers?: number;
  /** Time limit of one case, ms. */
  timeoutMs?: number;
  keep?: string;
  scratch?: string;
  log?: (line: string) => void;
}

export interface FuzzFailure {
  index: number;
  what: string;
  problem: string;
  image: string;
  replay: string;
}

export interface FuzzResult {
  cases: number;
  failed: number;
  failures: FuzzFailure[];
  refused: number;
  served: number;
  byKind: Record<string, { cases: number; failed: number }>;
  fsckExit: Record<string, number>;
  repairExit: Record<string, number>;
  seconds: number;
}

const POOL_MIB = 56;
const KiB = 1024;
const MAX_KEPT = 10;

/** Build the two base images (clean, crashed) in `dir`; returns their paths. */
export function buildBases(dir: string, seed: number): string[] {
  const poolPath = path.join(dir, 'base.pool');
  const crashed = path.join(dir, 'base-crashed.pool');
  const clean = path.join(dir, 'base-clean.pool');
  mkfs(poolPath, { size: POOL_MIB << 20, force: true });
  const fsys = openFileSystem(poolPath, { commitIntervalMs: 0 });
  const owner = { uid: 0, gid: 0 };
  let n = 0;
  const put = (parent: number, name: string, size: number, at = 0): number => {
    const ino = fsys.create(parent, name, 0o644, owner).ino;
    if (size) fsys.write(ino, at, patternBytes(size, mixSeed(seed, ++n)));
    return ino;
  };
  try {
    const d1 = fsys.mkdir(ROOT_INO, 'd1', 0o755, owner).ino;
    const sub = fsys.mkdir(d1, 'sub', 0o700, owner).ino;
    const deep = fsys.mkdir(sub, 'deep', 0o755, owner).ino;
    const small = put(ROOT_INO, 'small', 100);
    const f4k = put(d1, 'f4k', 4 * KiB);
    const f20k = put(d1, 'f20k', 20 * KiB);
    put(sub, 'f100k', 100 * KiB);
    put(deep, 'empty', 0);
    put(ROOT_INO, 'big', 3 << 20); // past 2 MiB: aligned, a huge PMD entry
    const sparse = put(ROOT_INO, 'sparse', 5000);
    fsys.write(sparse, 1 << 20, patternBytes(9000, mixSeed(seed, ++n)));
    fsys.write(sparse, 5 << 20, patternBytes(100, mixSeed(seed, ++n)));
    // Two files written in turns: hundreds of extents each, chains of two blocks.
    const fa = put(ROOT_INO, 'frag-a', 0);
    const fb = put(ROOT_INO, 'frag-b', 0);
    for (let i = 0; i < 300; i++) {
      fsys.write(fa, i * 4 * KiB, patternBytes(4 * KiB, mixSeed(seed, ++n)));
      fsys.write(fb, i * 4 * KiB, patternBytes(4 * KiB, mixSeed(seed, ++n)));
    }
    const many = fsys.mkdir(ROOT_INO, 'many', 0o755, owner).ino;
    for (let i = 0; i < 120; i++) put(many, `entry-${'x'.repeat(60)}-${i}`, i % 7 === 0 ? 300 : 0);
    fsys.symlink(ROOT_INO, 'link-inline', 'd1/f4k', owner);
    fsys.symlink(ROOT_INO, 'link-long', `/${'long/'.repeat(60)}target`, owner);
    fsys.create(ROOT_INO, 'fifo', S_IFIFO | 0o600, owner);
    fsys.create(d1, 'chardev', S_IFCHR | 0o600, owner, 0x0103);
    fsys.link(f4k, sub, 'hardlink');
    fsys.setxattr(small, 'user.a', Buffer.from('value of a'), XATTR_CREATE);
    fsys.setxattr(d1, 'user.dir', patternBytes(200, 7), 0);
    fsys.setxattr(f20k, 'trusted.t', patternBytes(40, 8), 0);
    fsys.setxattr(f20k, 'user.big', patternBytes(3000, 9), 0);
    fsys.setKnob('pageTablesOn', 1);
    fsys.sync();
    // Mid-work: more changes committed to the journal, an orphan, then a copy: the crashed base.
    const late = put(d1, 'late', 12 * KiB);
    fsys.write(late, 12 * KiB, patternBytes(8 * KiB, mixSeed(seed, ++n)));
    fsys.unlink(d1, 'f20k');
    fsys.rename(ROOT_INO, 'small', sub, 'small-moved');
    const orphan = put(ROOT_INO, 'orphan', 40 * KiB);
    fsys.open(orphan);
    fsys.unlink(ROOT_INO, 'orphan');
    fsys.sync();
    fs.copyFileSync(poolPath, crashed);
    fsys.release(orphan);
  } finally {
    fsys.close();
  }
  fs.renameSync(poolPath, clean);
  return [clean, crashed];
}

interface WorkerHandle {
  child: ChildProcess;
  busy: number | null;
  timer: NodeJS.Timeout | null;
}

/** The worker script: this module's sibling, run the way this one runs (TypeScript under tap, JavaScript from dist). */
function workerScript(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const ext = path.extname(here);
  return { file: path.join(path.dirname(here), `fuzz-worker${ext}`), execArgv: ext === '.ts' ? process.execArgv : [] };
}

/**
 * The cases run in `count` worker processes, each fed one case at a time; a
 * case with no result within `timeoutMs` (a hang) or whose worker dies (a
 * crash) is a failure, and the worker is replaced while cases are left.
 */
function runWorkers(
  p: { indices: number[]; count: number; timeoutMs: number; init: object; workers: WorkerHandle[] },
  onOutcome: (o: CaseOutcome, hang?: boolean) => void,
  onResult: () => void,
): Promise<void> {
  const script = workerScript();
  const { indices, timeoutMs } = p;
  let next = 0;
  return new Promise<void>((resolve, reject) => {
    let live = 0;
    const failed = (index: number, failure: string): CaseOutcome => ({ index, failure, fsckExit: -1, open: 'refused', repairExit: -1, fsErrors: 0 });
    const spawn = (slot: number): void => {
      const child = fork(script.file, [], { execArgv: script.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const h: WorkerHandle = { child, busy: null, timer: null };
      p.workers[slot] = h;
      live++;
      child.send({ type: 'init', ...p.init, slot });
      const feed = (): void => {
        if (next >= indices.length) {
          h.busy = null;
          child.send({ type: 'exit' });
          return;
        }
        const i = indices[next++]!; // next < indices.length (above)
        h.busy = i;
        h.timer = setTimeout(() => {
          h.timer = null;
          const idx = h.busy;
          h.busy = null;
          child.removeAllListeners('exit');
          child.kill('SIGKILL');
          live--;
          if (idx !== null) onOutcome(failed(idx, `no result within ${timeoutMs / 1000} s (a hang, or far too slow)`), true);
          if (next < indices.length) spawn(slot);
          else if (live === 0) resolve();
        }, timeoutMs);
        child.send({ type: 'case', index: i });
      };
      child.on('message', (m: { type: string; outcome?: CaseOutcome; error?: string }) => {
        if (m.type === 'ready') {
          feed();
        } else if (m.type === 'result' && m.outcome) {
          if (h.timer) clearTimeout(h.timer);
          h.timer = null;
          onOutcome(m.outcome);
          onResult();
          feed();
        } else if (m.type === 'fatal') {
          reject(new Error(`fuzz worker failed to start: ${m.error}`));
        }
      });
      child.on('exit', (code, signal) => {
        if (h.timer) clearTimeout(h.timer);
        live--;
        if (h.busy !== null) {
          const idx = h.busy;
          h.busy = null;
          onOutcome(failed(idx, `the worker died (exit ${code ?? ''}${signal ? ` signal ${signal}` : ''}): a crash of the process`));
          if (next < indices.length) spawn(slot);
        }
        if (live === 0) resolve();
      });
    };
    for (let s = 0; s < p.count; s++) spawn(s);
  });
}

export async function runFuzzer(opts: FuzzOptions): Promise<FuzzResult> {
  const log = opts.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const started = Date.now();
  const scratch = scratchDir('daxvm-fuzz-', opts.scratch);
  const result: FuzzResult = {
    cases: 0, failed: 0, failures: [], refused: 0, served: 0, byKind: {}, fsckExit: {}, repairExit: {}, seconds: 0,
  };
  let keepDir = opts.keep;
  const keepPath = (name: string): string => {
    if (!keepDir) keepDir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? os.tmpdir(), 'daxvm-fuzz-failures-'));
    fs.mkdirSync(keepDir, { recursive: true });
    return path.join(keepDir, name);
  };
  const workers: WorkerHandle[] = [];
  try {
    const basePaths = buildBases(scratch, opts.seed);
    const bases = basePaths.map((p) => fs.readFileSync(p));
    const inventories = basePaths.map((p) => inventory(p));
    const kinds = STRUCT_KINDS.filter((k) => inventories.some((inv) => (inv.byKind.get(k)?.length ?? 0) > 0));
    if (opts.only === undefined) {
      log(`fuzz: ${opts.cases} case(s), seed ${opts.seed}; base images: clean and crashed mid-work (journal to replay, an orphan); ` +
        `structures: ${kinds.map((k) => `${k} ${inventories.map((inv) => inv.byKind.get(k)?.length ?? 0).join('/')}`).join(', ')}`);
    }
    const indices = opts.only !== undefined ? [opts.only] : Array.from({ length: opts.cases }, (_, i) => i);
    const onOutcome = (o: CaseOutcome, hang = false): void => {
      const c = makeCase(opts.seed, o.index, bases, inventories);
      const failure = tally(result, c, o, opts.only !== undefined ? log : undefined);
      if (!failure) return;
      const replay = `npx daxvm test-fuzz --seed ${opts.seed} --case ${o.index}`;
      let image = '';
      log(`FAILED case ${o.index}${hang ? ' (hang)' : ''}: ${failure}`);
      log(`  damage: ${describeCase(c)}`);
      if (result.failed <= MAX_KEPT || opts.only !== undefined) {
        image = keepPath(`fuzz-seed${opts.seed}-case${o.index}.pool`);
        const base = bases[c.base];
        if (base) saveCaseImage(base, c, image);
        log(`  image kept: ${image}`);
      }
      log(`  replay: ${replay}`);
      result.failures.push({ index: o.index, what: describeCase(c), problem: failure, image, replay });
    };
    let progressAt = Date.now();
    const onResult = (): void => {
      if (opts.only === undefined && Date.now() - progressAt > 10000) {
        progressAt = Date.now();
        log(`  ${result.cases}/${indices.length} cases, ${result.failed} failed`);
      }
    };
    const count = Math.max(1, Math.min(opts.workers ?? Math.min(4, os.cpus().length), indices.length));
    const init = { bases: basePaths, seed: opts.seed, scratch };
    await runWorkers({ indices, count, timeoutMs: opts.timeoutMs ?? 30000, init, workers }, onOutcome, onResult);
  } finally {
    for (const w of workers) if (w && w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  result.seconds = (Date.now() - started) / 1000;
  if (opts.only === undefined) {
    const kinds = Object.entries(result.byKind).map(([k, v]) => `${k} ${v.cases}${v.failed ? ` (${v.failed} failed)` : ''}`).join(', ');
    log(`by structure: ${kinds}`);
    log(`damaged pools: open refused ${result.refused}, served ${result.served}; fsck exit ${fmtCounts(result.fsckExit)}; fsck --repair exit ${fmtCounts(result.repairExit)} (${result.seconds.toFixed(1)} s)`);
  }
  log(`fuzz cases: ${result.cases} run, ${result.failed} failed`);
  return result;
}

/** Count a case's outcome in the result (and show it when one case is replayed); its failure, if any. */
function tally(result: FuzzResult, c: FuzzCase, o: CaseOutcome, show?: (line: string) => void): string | undefined {
  result.cases++;
  const kind = c.mutations[0]!.structure.kind; // makeCase makes one or more
  const k = (result.byKind[kind] ??= { cases: 0, failed: 0 });
  k.cases++;
  if (o.open === 'served') result.served++;
  else result.refused++;
  result.fsckExit[String(o.fsckExit)] = (result.fsckExit[String(o.fsckExit)] ?? 0) + 1;
  result.repairExit[String(o.repairExit)] = (result.repairExit[String(o.repairExit)] ?? 0) + 1;
  if (show) {
    show(`case ${o.index}: ${describeCase(c)}`);
    show(`  fsck exit ${o.fsckExit}; open ${o.open}${o.open === 'served' ? ` (${o.fsErrors} FsError(s) in the walk)` : ''}; fsck --repair exit ${o.repairExit}`);
  }
  if (!o.failure) return undefined;
  result.failed++;
  k.failed++;
  return o.failure;
}

function fmtCounts(m: Record<string, number>): string {
  return Object.entries(m).sort().map(([k, v]) => `${k}: ${v}`).join(', ');
}

/** Write base + the case's pages as a sparse pool file. */
function saveCaseImage(base: Buffer, c: FuzzCase, dest: string): void {
  const dir = path.dirname(dest);
  const img = new WorkImage(path.join(dir, `.${path.basename(dest)}.tmp`), base);
  try {
    for (const [p, bytes] of c.pages) img.writePage(p, bytes);
    img.saveAs(dest);
  } finally {
    img.close();
    fs.rmSync(img.path, { force: true });
  }
}
