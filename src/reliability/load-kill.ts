/**
 * The kill loop: one pool through many crashes. Each round (seeded) mounts
 * it and runs fio (random overwrites of a 16 MiB file laid out in the first
 * round, fsync or fdatasync after each write, crc32c verify headers) and
 * the metadata client side by side in a directory of its own, SIGKILLs the
 * daemon after a seeded delay and detaches the mount. Then:
 *
 *  1. both clients end on the mount's errors only (ENOTCONN, ECONNABORTED);
 *  2. `daxvm fsck` of the pool as the crash left it (read-only: it replays
 *     the journal in memory) is clean, but for files unlinked while open
 *     (orphans, reclaimed by recovery at the next mount);
 *  3. the remount recovers; fio verifies every write it completed; the
 *     metadata tree is a state its log allows (load-meta-check.ts);
 *  4. the round's files are removed, a clean unmount, and fsck is clean.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import debug from 'debug';
import { mixSeed, rng } from './image.js';
import { LoadContext } from './load-context.js';
import { fioLayout, fioStart, fioStateFile, fioVerify, fioWriteOutcome, type FioJob } from './load-fio.js';
import { checkMetaTree, parseMetaLog } from './load-meta-check.js';
import { exitWithin, fsckPool, mkfsPool, spawnClient, mountDaemon, stopDaemon } from './load-mount.js';

/** errno values (fio reports numbers) that a client may see once the daemon is gone. */
const GONE_ERRNOS = new Set([103 /* ECONNABORTED */, 107 /* ENOTCONN */]);

export interface KillRound {
  round: number;
  seed: number;
  delayMs: number;
  commit: string;
  fioWrites: number;
  fioBytesVerified: number;
  metaOps: number;
  metaFsyncs: number;
  durableOps: number;
  laterFound: number;
  metaBytes: number;
  /** Files unlinked while open at the crash, reported by fsck before recovery reclaimed them. */
  orphans: number;
  problem: string | null;
}

export interface KillOptions {
  rounds: number;
  seed: number;
  /** Longest delay before the kill, ms (seeded in [100, maxDelayMs], counted from the metadata client's first fsync). */
  maxDelayMs?: number;
}

const POOL_SIZE = '256M';
const dbg = debug('daxvm:reliability');
/** Operations the metadata client starts with (mkdir meta, meta/d0..d3, fsync of meta). */
const SETUP_OPS = 6;

/**
 * Read-only fsck of a pool left mounted replays the journal in memory, but
 * files unlinked while open at the crash are reclaimed by recovery at the
 * next mount; until then fsck reports them (as e2fsck -n does), with the
 * blocks they still hold marked used and their inodes in the bitmap.
 * Anything else, or a used block marked free, is a problem.
 */
function onlyOrphans(problems: string[], orphans: number): boolean {
  if (orphans === 0) return false;
  return problems.every((p) => p.startsWith('orphan: ') ||
    /^bitmap: block bitmap: 0 used block\(s\) marked free, \d+ free block\(s\) marked used$/.test(p) ||
    p === `bitmap: inode bitmap: ${orphans} inode(s) marked wrongly`);
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** One round; returns its figures, with `problem` set at the first thing that failed. */
async function round(ctx: LoadContext, pool: string, i: number, seed: number, maxDelayMs: number): Promise<KillRound> {
  const r = rng(mixSeed(seed, 0x6b1));
  const commit = [undefined, 1, 0.2][Math.floor(r() * 3)];
  const delayMs = Math.floor(100 + r() * (maxDelayMs - 100));
  const out: KillRound = {
    round: i, seed, delayMs, commit: commit === undefined ? 'default' : `${commit}s`, fioWrites: 0, fioBytesVerified: 0,
    metaOps: 0, metaFsyncs: 0, durableOps: 0, laterFound: 0, metaBytes: 0, orphans: 0, problem: null,
  };
  const host = path.join(ctx.work, `kill-${i}`);
  fs.mkdirSync(host, { recursive: true });
  const mnt = path.join(ctx.work, 'mnt');
  const metaLog = path.join(host, 'meta.log');
  const job: FioJob = {
    cwd: path.join(mnt, `r${i}`), file: '../fio.dat', hostDir: host, size: '16M', rateIops: 1200,
    bs: r() < 0.5 ? '4k' : '8k', sync: r() < 0.5 ? 'fsync' : 'fdatasync', seed: mixSeed(seed, 0xf10),
  };
  const fail = (problem: string): KillRound => ({ ...out, problem });
  const t0 = Date.now();
  const step = (what: string): void => dbg('kill round %d: %s at %d ms', i, what, Date.now() - t0);

  let d = await mountDaemon(pool, mnt, path.join(host, 'daemon-workload.log'), commit === undefined ? {} : { commitSeconds: commit });
  try {
    step('mounted');
    fs.mkdirSync(path.join(mnt, `r${i}`));
    syncDir(path.join(mnt, `r${i}`)); // the clients' working directory is there after any crash
    // Laid out once, the first round; later rounds overwrite it again (fio checks what this round wrote).
    if (!fs.existsSync(path.join(mnt, 'fio.dat'))) {
      const lay = fioLayout(job);
      if (lay.exit !== 0) return fail(`fio could not lay out its file: exit ${lay.exit} ${lay.stderr}`);
      step('laid out');
    }
    const fio = fioStart(job);
    const meta = spawnClient('load-meta-client', { log: metaLog, seed: mixSeed(seed, 0x3e7a), mode: 'kill' }, path.join(host, 'meta.out'), path.join(mnt, `r${i}`));
    // The delay counts from the end of the metadata client's setup (a loaded machine may take a while to start it).
    for (const end = Date.now() + 30_000; Date.now() < end && meta.exitCode === null && parseMetaLog(metaLog).done.length < SETUP_OPS;) await sleep(20);
    await sleep(delayMs);
    const early = [fio, meta].find((c) => c.exitCode !== null && c.exitCode !== 0);
    await d.kill();
    step('killed');
    const fioExit = await exitWithin(fio, 30_000);
    const metaExit = await exitWithin(meta, 30_000);
    if (!fioExit || !metaExit) {
      fio.kill('SIGKILL');
      meta.kill('SIGKILL');
      return fail(`${!fioExit ? 'fio' : 'the metadata client'} still running 30 s after the daemon died (hung on the dead mount)`);
    }
    const w = fioWriteOutcome(job, fioExit.code);
    out.fioWrites = w.ios;
    const metaOut = fs.readFileSync(path.join(host, 'meta.out'), 'utf8').trim();
    if (early) return fail(`a client failed before the kill: ${early === fio ? `fio: ${w.stderr}` : `metadata client: ${metaOut}`}`);
    if (w.error !== 0 && !GONE_ERRNOS.has(w.error)) return fail(`fio ended with error ${w.error}, not the mount's going away: ${w.stderr}`);
    if (metaExit.code !== 0) return fail(`the metadata client ended with exit ${metaExit.code ?? metaExit.signal}: ${metaOut}`);
    const ml = parseMetaLog(metaLog);
    if (ml.lastError && !['ENOTCONN', 'ECONNABORTED'].includes(ml.lastError)) return fail(`the metadata client ended on ${ml.lastError}`);

    fs.copyFileSync(pool, path.join(ctx.work, 'crashed.pool'));
    step('clients gone, pool copied');
    const f0 = fsckPool(pool);
    const orphans = f0.problems.filter((p) => p.startsWith('orphan: ')).length;
    if (f0.exit !== 0 && !onlyOrphans(f0.problems, orphans)) {
      return fail(`fsck of the pool as the crash left it: exit ${f0.exit}: ${f0.problems.slice(0, 5).join('; ')}`);
    }
    out.orphans = orphans;

    step('fsck of the crashed pool');
    d = await mountDaemon(pool, mnt, path.join(host, 'daemon-recovery.log'));
    step('remounted');
    // Nothing to verify when the kill came before fio's first write.
    if (w.ios > 0) {
      if (w.error !== 0 && !fs.existsSync(fioStateFile(job))) return fail(`fio died of the kill after ${w.ios} writes without saving its state`);
      const v = fioVerify(job);
      if (v.exit !== 0 || v.error !== 0) return fail(`fio verify after recovery: exit ${v.exit}, error ${v.error}: ${v.stderr.slice(0, 1000)}`);
      // fio's state leaves out the last write when the kill came in its fsync: not fsync'ed, not owed.
      if (v.ios < w.ios - 1) return fail(`fio verified ${v.ios} writes, it had completed ${w.ios}`);
      out.fioBytesVerified = v.bytes;
    }
    step('fio verified');
    const m = checkMetaTree(path.join(mnt, `r${i}`), metaLog, mixSeed(seed, 0x3e7a), true);
    Object.assign(out, { metaOps: m.ops, metaFsyncs: m.fsyncs, durableOps: m.durableOps, laterFound: m.laterFound, metaBytes: m.bytes });
    if (m.problem) return fail(`metadata: ${m.problem}`);
    step('metadata checked');
    fs.rmSync(path.join(mnt, `r${i}`), { recursive: true, force: true });
    step('removed');
    const st = await stopDaemon(d);
    if (!st.ok) return fail(`clean unmount after recovery failed: ${st.detail}`);
    step('unmounted');
    const f1 = fsckPool(pool);
    step('fsck');
    if (f1.exit !== 0) return fail(`fsck after recovery and a clean unmount: exit ${f1.exit}: ${f1.problems.slice(0, 5).join('; ')}`);
    return out;
  } finally {
    d.cleanup();
  }
}

export async function runKillLoop(ctx: LoadContext, o: KillOptions): Promise<KillRound[]> {
  const pool = path.join(ctx.work, 'kill.pool');
  mkfsPool(pool, POOL_SIZE);
  const rounds: KillRound[] = [];
  for (let i = 0; i < o.rounds; i++) {
    const seed = o.seed + i;
    let res: KillRound;
    try {
      res = await round(ctx, pool, i, seed, o.maxDelayMs ?? 3000);
    } catch (err) {
      res = { round: i, seed, delayMs: 0, commit: '', fioWrites: 0, fioBytesVerified: 0, metaOps: 0, metaFsyncs: 0, durableOps: 0, laterFound: 0, metaBytes: 0, orphans: 0, problem: `harness error: ${(err as Error).stack ?? String(err)}` };
    }
    rounds.push(res);
    const host = path.join(ctx.work, `kill-${i}`);
    if (res.problem) {
      ctx.fail({ part: 'kill', round: i, seed, problem: res.problem, replay: `npx daxvm test-load --only kill --kill-rounds 1 --seed ${seed}` },
        [path.join(ctx.work, 'crashed.pool'), pool, host]);
      mkfsPool(pool, POOL_SIZE); // the next round starts from a sound pool
    } else {
      ctx.log(`kill round ${i} (seed ${seed}): killed after ${res.delayMs} ms (commit ${res.commit}); fio ${res.fioWrites} writes, ` +
        `${res.fioBytesVerified} bytes verified; metadata ${res.metaOps} ops, ${res.metaFsyncs} fsyncs, ${res.durableOps} durable, ` +
        `${res.laterFound} later found; fsck ${res.orphans ? `before recovery: ${res.orphans} orphan(s) only, after: clean` : 'clean'}`);
    }
    fs.rmSync(host, { recursive: true, force: true });
  }
  return rounds;
}
