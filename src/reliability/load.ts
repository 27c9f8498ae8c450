/**
 * Faults under load, through the mount: the kill loop (load-kill.ts), the
 * pool that fills up (load-fill.ts), the host disk under a sparse pool that
 * fills up (load-hostfull.ts) and many concurrent clients
 * (load-clients.ts), one after the other, each on its own pools in a
 * scratch directory. Round k of a part uses seed S+k, so a failing round
 * replays as round 0 of its own seed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { scratchDir } from './image.js';
import { runClients, type ClientsRun } from './load-clients.js';
import { LoadContext, type LoadFailure } from './load-context.js';
import { runFill, type FillRound } from './load-fill.js';
import { runHostFull, unmountHosts } from './load-hostfull.js';
import { runKillLoop, type KillRound } from './load-kill.js';
import { cleanupAll } from './load-mount.js';

export type LoadPart = 'kill' | 'fill' | 'clients' | 'hostfull';
export const LOAD_PARTS: readonly LoadPart[] = ['kill', 'fill', 'clients', 'hostfull'];

export interface LoadOptions {
  killRounds: number;
  fillRounds: number;
  /** Rounds of the full host disk (a sparse pool on a small tmpfs; needs root). */
  hostFullRounds: number;
  clients: number;
  /** How long the concurrent clients run. */
  minutes: number;
  seed: number;
  only?: LoadPart;
  keep?: string;
  scratch?: string;
  /** Longest seeded delay before a kill, ms. */
  maxDelayMs?: number;
  log?: (line: string) => void;
}

export interface LoadResult {
  run: number;
  failed: number;
  failures: LoadFailure[];
  kill: KillRound[];
  fill: FillRound[];
  hostFull: FillRound[];
  clients: ClientsRun | null;
  seconds: number;
}

/** Tools the load test runs; a missing one is named with the fix. */
export function checkTools(): void {
  const need: Array<[string, string[], string]> = [
    ['fio', ['--version'], 'fio'],
    ['fusermount', ['-V'], 'fuse'],
    ['setfattr', ['--version'], 'attr'],
    ['getfattr', ['--version'], 'attr'],
  ];
  for (const [cmd, args, pkg] of need) {
    const r = spawnSync(cmd, args, { stdio: 'ignore' });
    if (r.error) throw new Error(`${cmd} is not installed: the load test runs it (install it: apt-get install ${pkg}, or node scripts/system-deps.cjs)`);
  }
  if (!fs.existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: the load test mounts pools through FUSE (modprobe fuse, or run where FUSE is available)');
}

/** The scratch directory of the run under way, for abortLoad(). */
let active: string | undefined;

/** On a signal: kill our daemons, detach their mounts, remove the scratch directory. */
export function abortLoad(): void {
  cleanupAll();
  unmountHosts();
  if (active) fs.rmSync(active, { recursive: true, force: true });
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  checkTools();
  const started = Date.now();
  const work = scratchDir('daxvm-load-', o.scratch);
  active = work;
  const ctx = new LoadContext(work, log, o.keep);
  const wants = (p: LoadPart) => o.only === undefined || o.only === p;
  const result: LoadResult = { run: 0, failed: 0, failures: ctx.failures, kill: [], fill: [], hostFull: [], clients: null, seconds: 0 };
  log(`load: ${wants('kill') ? o.killRounds : 0} kill round(s), ${wants('fill') ? o.fillRounds : 0} fill round(s), ` +
    `${wants('hostfull') ? o.hostFullRounds : 0} host-full round(s), ` +
    `${wants('clients') && o.clients > 0 ? `${o.clients} clients for ${o.minutes} min` : 'no concurrent clients'}; seed ${o.seed}; work in ${work}`);
  try {
    if (wants('kill') && o.killRounds > 0) result.kill = await runKillLoop(ctx, { rounds: o.killRounds, seed: o.seed, ...(o.maxDelayMs ? { maxDelayMs: o.maxDelayMs } : {}) });
    if (wants('fill') && o.fillRounds > 0) result.fill = await runFill(ctx, o.fillRounds, o.seed);
    if (wants('hostfull') && o.hostFullRounds > 0) result.hostFull = await runHostFull(ctx, o.hostFullRounds, o.seed);
    if (wants('clients') && o.clients > 0) result.clients = await runClients(ctx, o.clients, Math.round(o.minutes * 60), o.seed);
  } finally {
    abortLoad();
    active = undefined;
  }
  result.seconds = (Date.now() - started) / 1000;
  result.run = result.kill.length + result.fill.length + result.hostFull.length + (result.clients ? 1 : 0);
  result.failed = ctx.failures.length;
  const k = result.kill.filter((r) => !r.problem);
  if (result.kill.length) {
    log(`kill: ${k.length} of ${result.kill.length} kills survived; fio ${sum(k, (r) => r.fioWrites)} writes, ${mib(sum(k, (r) => r.fioBytesVerified))} verified; ` +
      `metadata ${sum(k, (r) => r.metaOps)} ops, ${sum(k, (r) => r.metaFsyncs)} fsyncs, ${sum(k, (r) => r.durableOps)} durable ops checked, ` +
      `${sum(k, (r) => r.laterFound)} later ops found, ${mib(sum(k, (r) => r.metaBytes))} of their files read back; ` +
      `fsck before recovery clean in ${k.filter((r) => !r.orphans).length}, orphans only in ${k.filter((r) => r.orphans).length}`);
  }
  const f = result.fill.filter((r) => !r.problem);
  if (result.fill.length) {
    const en: Record<string, number> = {};
    for (const r of f) for (const [key, v] of Object.entries(r.enospc)) en[key] = (en[key] ?? 0) + v;
    log(`fill: ${f.length} of ${result.fill.length} rounds; ${mib(sum(f, (r) => r.bytesVerified))} written and read back; ENOSPC ${Object.entries(en).map(([key, v]) => `${key} ${v}`).join(', ')}`);
  }
  const h = result.hostFull.filter((r) => !r.problem);
  if (result.hostFull.length) {
    log(`host-full: ${h.length} of ${result.hostFull.length} rounds; ${mib(sum(h, (r) => r.bytesVerified))} written and read back before the host was full; ` +
      `ENOSPC only, the daemon lived, fsck clean`);
  }
  log(`${result.seconds.toFixed(0)} s in all`);
  log(`load rounds: ${result.run} run, ${result.failed} failed`);
  return result;
}

function sum<T>(xs: T[], f: (x: T) => number): number {
  return xs.reduce((n, x) => n + f(x), 0);
}

const mib = (b: number): string => `${(b / (1 << 20)).toFixed(1)} MiB`;
