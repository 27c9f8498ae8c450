/**
 * The fill test: a small pool filled up under load. Each round (seeded) makes
 * a fresh pool, mounts it, and runs three writers (load-fill-client.ts) and
 * the metadata client (ENOSPC accepted) until every writer met a full pool.
 * Then:
 *
 *  1. the writers saw ENOSPC and no other error; so did the metadata client;
 *     statfs shows the pool full;
 *  2. every file holds exactly what its writes returned (fsync'ed or cut
 *     short by ENOSPC), a create that failed left no file, and the
 *     metadata tree is the state after every operation that returned;
 *  3. after deleting everything, statfs shows the space back (polled: frees
 *     are deferred to the next commit, and may be pre-zeroed first), and
 *     half the pool written anew (fsync'ed) reads back;
 *  4. a clean unmount, and fsck is clean.
 *
 * load-hostfull.ts runs the same round with the pool sparse, on a host file
 * system smaller than the pool: the host fills up first.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mixSeed, rng } from './image.js';
import { LoadContext } from './load-context.js';
import type { FillLine } from './load-fill-client.js';
import { checkMetaTree } from './load-meta-check.js';
import { exitWithin, fsckPool, mkfsPool, readJsonLines, spawnClient, statfsBytes, mountDaemon, stopDaemon } from './load-mount.js';
import { patternAt, patternMismatch } from './load-pattern.js';

export interface FillRound {
  round: number;
  seed: number;
  /** 'pool': the pool fills up; 'host': a sparse pool on a host file system that fills up first (load-hostfull.ts). */
  full: 'pool' | 'host';
  commit: string;
  /** ENOSPC answers, by the call that gave them (metadata client: 'meta'). */
  enospc: Record<string, number>;
  bytesWritten: number;
  bytesVerified: number;
  metaOps: number;
  /** Free bytes before the workload, when full, and after deleting everything. */
  freeBefore: number;
  freeFull: number;
  freeAfter: number;
  problem: string | null;
}

const POOL_SIZE = '64M';
const WRITERS = 3;
const MiB = 1 << 20;

/** Check every writer's files against its log; returns bytes read back, or a problem. */
function checkWriterFiles(dir: string, lines: FillLine[]): { bytes: number; problem: string | null } {
  let bytes = 0;
  for (const l of lines) {
    const p = path.join(dir, l.f);
    if (l.enospc === 'create') {
      if (fs.existsSync(p)) return { bytes, problem: `${p}: its create answered ENOSPC, yet the file is there` };
      continue;
    }
    let b: Buffer;
    try {
      b = fs.readFileSync(p);
    } catch (err) {
      return { bytes, problem: `${p}: ${(err as NodeJS.ErrnoException).code} (${l.written} bytes were written${l.durable ? ' and fsync\'ed' : ''})` };
    }
    bytes += b.length;
    if (b.length !== l.written) return { bytes, problem: `${p}: ${b.length} bytes, its writes returned ${l.written}${l.enospc ? ` (then ENOSPC from ${l.enospc})` : ''}` };
    const bad = patternMismatch(l.seed, 0, b);
    if (bad >= 0) return { bytes, problem: `${p}: byte ${bad} of ${b.length} is not what was written there` };
  }
  return { bytes, problem: null };
}

/** Where a round's pool lives, when not in its own directory of the work directory (the host-full case). */
export interface FillPlacement {
  /** Directory of the pool file: a small host file system that fills up before the pool does. */
  poolDir: string;
  /** Pool size, larger than that host. */
  size: string;
  /** Checked once every writer met ENOSPC: the host is full (undefined) or why not. */
  hostFull(): string | undefined;
}

/** One round: the pool filled up (or, placed, the host under a sparse pool), then checked; `dir` holds its logs. */
export async function fillRound(ctx: LoadContext, i: number, seed: number, dir: string, place?: FillPlacement): Promise<FillRound> {
  const r = rng(mixSeed(seed, 0xf1));
  const commit = [undefined, 0.2][Math.floor(r() * 2)];
  const out: FillRound = {
    round: i, seed, full: place ? 'host' : 'pool', commit: commit === undefined ? 'default' : `${commit}s`, enospc: {}, bytesWritten: 0, bytesVerified: 0,
    metaOps: 0, freeBefore: 0, freeFull: 0, freeAfter: 0, problem: null,
  };
  const fail = (problem: string): FillRound => ({ ...out, problem });
  const host = dir;
  fs.mkdirSync(host, { recursive: true });
  const pool = path.join(place?.poolDir ?? host, 'fill.pool');
  const mnt = path.join(ctx.work, 'mnt');
  mkfsPool(pool, place?.size ?? POOL_SIZE, place ? ['--sparse'] : []);
  const d = await mountDaemon(pool, mnt, path.join(host, 'daemon.log'), commit === undefined ? {} : { commitSeconds: commit });
  try {
    const root = path.join(mnt, 'fill');
    for (let w = 0; w < WRITERS; w++) fs.mkdirSync(path.join(root, `w${w}`), { recursive: true });
    out.freeBefore = statfsBytes(mnt).free;
    const metaLog = path.join(host, 'meta.log');
    const metaSeed = mixSeed(seed, 0x3e7a);
    const meta = spawnClient('load-meta-client', { log: metaLog, seed: metaSeed, mode: 'fill' }, path.join(host, 'meta.out'), root);
    const writers = Array.from({ length: WRITERS }, (_, w) =>
      spawnClient('load-fill-client', { log: path.join(host, `w${w}.log`), seed: mixSeed(seed, w, 0x3a), limit: 4 * out.freeBefore },
        path.join(host, `w${w}.out`), path.join(root, `w${w}`)));
    const ends = await Promise.all(writers.map((c) => exitWithin(c, 300_000)));
    await sleep(1000); // the metadata client goes on a while in the full pool: its share of ENOSPC
    meta.kill('SIGTERM');
    const metaEnd = await exitWithin(meta, 30_000);
    const outText = (n: string) => (fs.existsSync(path.join(host, n)) ? fs.readFileSync(path.join(host, n), 'utf8').trim() : '');
    const logs = Array.from({ length: WRITERS }, (_, w) => readJsonLines<FillLine & { t?: string }>(path.join(host, `w${w}.log`)));
    for (const [w, log] of logs.entries()) {
      const bad = log.find((l) => l.err || l.t === 'never full');
      const end = ends[w];
      if (end?.code !== 0) return fail(`writer ${w} ${end ? `exited ${end.code ?? end.signal}` : 'hung (5 minutes)'}: ${bad ? JSON.stringify(bad) : outText(`w${w}.out`)}`);
      for (const l of log) if (l.enospc) out.enospc[l.enospc] = (out.enospc[l.enospc] ?? 0) + 1;
      if (!log.some((l) => l.enospc)) return fail(`writer ${w} never met ENOSPC`);
    }
    if (metaEnd?.code !== 0) return fail(`the metadata client ${metaEnd ? `exited ${metaEnd.code ?? metaEnd.signal}` : 'did not stop'}: ${outText('meta.out')}`);
    const full = statfsBytes(mnt);
    out.freeFull = full.free;
    if (full.avail > full.total / 20) return fail(`statfs says ${full.avail} bytes available after every writer met ENOSPC`);
    const notFull = place?.hostFull();
    if (notFull) return fail(notFull);

    for (const [w, log] of logs.entries()) {
      const lines = log.filter((l) => l.f);
      out.bytesWritten += lines.reduce((n, l) => n + l.written, 0);
      const c = checkWriterFiles(path.join(root, `w${w}`), lines);
      out.bytesVerified += c.bytes;
      if (c.problem) return fail(c.problem);
    }
    const m = checkMetaTree(root, metaLog, metaSeed, false);
    out.metaOps = m.ops;
    out.enospc.meta = m.enospc;
    if (m.problem) return fail(`metadata: ${m.problem}`);

    fs.rmSync(root, { recursive: true });
    const deadline = Date.now() + 15_000;
    while ((out.freeAfter = statfsBytes(mnt).free) < out.freeBefore - MiB && Date.now() < deadline) await sleep(100);
    if (out.freeAfter < out.freeBefore - MiB) return fail(`after deleting everything statfs shows ${out.freeAfter} bytes free, ${out.freeBefore} before the workload`);
    const again = path.join(mnt, 'again');
    const size = Math.floor(out.freeBefore / 2 / MiB) * MiB;
    const s2 = mixSeed(seed, 0xa9a1);
    const fd = fs.openSync(again, 'wx');
    try {
      for (let at = 0; at < size; at += MiB) fs.writeSync(fd, patternAt(s2, at, MiB), 0, MiB, at);
      fs.fsyncSync(fd);
    } catch (err) {
      return fail(`writing ${size} bytes after the deletes: ${(err as NodeJS.ErrnoException).code}`);
    } finally {
      fs.closeSync(fd);
    }
    const back = fs.readFileSync(again);
    if (back.length !== size || patternMismatch(s2, 0, back) >= 0) return fail(`the file written after the deletes does not read back`);
    const st = await stopDaemon(d);
    if (!st.ok) return fail(`clean unmount failed: ${st.detail}`);
    const f = fsckPool(pool);
    if (f.exit !== 0) return fail(`fsck after the fill: exit ${f.exit}: ${f.problems.slice(0, 5).join('; ')}`);
    return out;
  } finally {
    d.cleanup();
  }
}

export async function runFill(ctx: LoadContext, rounds: number, seed0: number): Promise<FillRound[]> {
  const res: FillRound[] = [];
  for (let i = 0; i < rounds; i++) {
    const seed = seed0 + i;
    let fr: FillRound;
    try {
      fr = await fillRound(ctx, i, seed, path.join(ctx.work, `fill-${i}`));
    } catch (err) {
      fr = { round: i, seed, full: 'pool', commit: '', enospc: {}, bytesWritten: 0, bytesVerified: 0, metaOps: 0, freeBefore: 0, freeFull: 0, freeAfter: 0, problem: `harness error: ${(err as Error).stack ?? String(err)}` };
    }
    res.push(fr);
    const host = path.join(ctx.work, `fill-${i}`);
    if (fr.problem) {
      ctx.fail({ part: 'fill', round: i, seed, problem: fr.problem, replay: `npx daxvm test-load --only fill --fill-rounds 1 --seed ${seed}` }, [host]);
    } else {
      const e = Object.entries(fr.enospc).map(([k, v]) => `${k} ${v}`).join(', ');
      ctx.log(`fill round ${i} (seed ${seed}): ${(fr.bytesWritten / MiB).toFixed(1)} MiB written and read back, ENOSPC from ${e}; ` +
        `metadata ${fr.metaOps} ops; free ${(fr.freeBefore / MiB).toFixed(1)} → ${(fr.freeFull / MiB).toFixed(1)} → ${(fr.freeAfter / MiB).toFixed(1)} MiB; fsck clean`);
    }
    fs.rmSync(host, { recursive: true, force: true });
  }
  return res;
}
