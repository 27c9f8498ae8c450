/**
 * Mount harness for integration tests: temp pools made with the built CLI, and
 * the daemon run as a CHILD PROCESS in the foreground through core's harness
 * (src/core/temp-mount.ts: the daemon must never make a synchronous call into
 * its own mount, and neither may a process that hosts it, so tests never
 * mount in-process; its log goes to a file, printed when a test fails).
 *
 * Every mount is unmounted (`fusermount -uz`) and its daemon killed in
 * t.teardown, even when the test failed, and again by the harness's 'exit'
 * hook and reaper as a last resort.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { FSTYPE, readMounts, topMountAt } from '../../src/core/mountinfo.js';
import { mainScript, packageRoot } from '../../src/core/paths.js';
import { DaemonMount, unmountAllUnder, type Exit } from '../../src/core/temp-mount.js';
import { sharedPath } from '../../src/core/format/shared.js';
import { parseSize } from '../../src/core/output.js';
import { mkfs } from '../../src/fs/index.js';

export { FSTYPE, unmountAllUnder };
export const ROOT = packageRoot();
export const CLI = mainScript();

/**
 * How tests start node for the CLI and the daemon: without tap's NODE_OPTIONS. Its processinfo import
 * (put back into every spawn's environment by a spawn hook, so deleting it from `env` does nothing; `env -u`
 * drops it after the hook) cost each of the suite's ~600 node children 0.3-0.4 s of start-up (mkfs: 0.83-0.95
 * -> 0.55-0.58 s), and records what only coverage reads, which is off. The CLI runs as a user's shell runs it.
 */
export const NODE: readonly string[] = ['env', '-u', 'NODE_OPTIONS', process.execPath];

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** One string for assertion messages: command, status, output. */
  summary: string;
}

function summarize(cmd: string, r: { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }): string {
  const cut = (s: string) => (s.length > 2000 ? s.slice(0, 1000) + '\n...\n' + s.slice(-1000) : s);
  return `$ ${cmd}\nexit ${r.status}${r.signal ? ` signal ${r.signal}` : ''}\nstdout: ${cut(r.stdout)}\nstderr: ${cut(r.stderr)}`;
}

/** Run a program (no shell), wait for it. */
export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
    timeout: 300_000,
    ...opts,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  const res = {
    status: r.status,
    signal: r.signal,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') + (r.error ? `\n[${r.error.message}]` : ''),
  };
  return { ...res, summary: summarize([cmd, ...args].join(' '), res) };
}

/** Run a bash script (`set -e -o pipefail`), wait for it. */
export function sh(script: string, opts: SpawnSyncOptions = {}): RunResult {
  const r = run('bash', ['-c', `set -e -o pipefail\n${script}`], opts);
  return { ...r, summary: summarize(script, r) };
}

/** Run the built CLI: `node dist/cli/main.js ARGS`. */
export function cli(args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = run(NODE[0]!, [...NODE.slice(1), CLI, ...args], opts);
  return { ...r, summary: summarize(`daxvm ${args.join(' ')}`, r) };
}

/** A temp directory under os.tmpdir(), removed at teardown. */
export function tempDir(t: Test, prefix = 'daxvm-test-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  t.teardown(() => {
    unmountAllUnder(dir);
    removeSharedFiles(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/**
 * The shared files (/dev/shm) of pools in dir, two levels deep: a daemon a
 * test killed leaves them, as a crashed one would.
 */
function removeSharedFiles(dir: string, depth = 2): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory() && depth > 1) removeSharedFiles(p, depth - 1);
    if (!e.isFile()) continue;
    try {
      const st = statSync(p, { bigint: true });
      for (const kind of ['leases', 'ns'] as const) rmSync(sharedPath(st, kind), { force: true });
    } catch { /* gone */ }
  }
}

export interface PoolInfo {
  /** The temp directory holding the pool (and nothing of anyone else's). */
  dir: string;
  /** Path of the pool file. */
  pool: string;
}

/**
 * What `daxvm mkfs POOL --size SIZE` makes, into a fresh temp dir; removed at teardown. Made in this
 * process (the fs layer's mkfs, as the CLI calls it: mode 0600, allocated on the host) unless `args`
 * asks for more: a fixture, not a test of the CLI (test/cli*), and a node start fewer per pool
 * (~0.5 s each, 65 pools in the suite).
 */
export function makePool(t: Test, opts: { size?: string; args?: string[] } = {}): PoolInfo {
  const dir = tempDir(t, 'daxvm-pool-');
  const pool = join(dir, 'pool.daxvm');
  if (opts.args?.length) {
    const r = cli(['mkfs', pool, '--size', opts.size ?? '256M', ...opts.args]);
    if (r.status !== 0) throw new Error(`mkfs failed\n${r.summary}`);
  } else {
    mkfs(pool, { size: parseSize(opts.size ?? '256M'), mode: 0o600 });
  }
  return { dir, pool };
}

/** A daxvm mount is visible at `mnt`. */
export function isMounted(mnt: string): boolean {
  return topMountAt(mnt, readMounts()) !== undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** p, or null after ms; the timer is cleared either way (a pending timer would keep the test process alive). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export interface MountOptions {
  /** `-o` options, e.g. ['ro'] or ['allow_other', 'default_permissions']. */
  opts?: string[];
  /** More CLI arguments for `daxvm mount`. */
  args?: string[];
  /** How long to wait for the mount to appear (ms). */
  timeoutMs?: number;
  /** Use this mount point instead of a new temp dir. */
  mnt?: string;
}

export interface Mounted {
  mnt: string;
  pool: string;
  child: ChildProcess;
  /** Path of the daemon's log (its stdout and stderr). */
  logPath: string;
  log(): string;
  /** Clean unmount: `daxvm umount MNT` (SIGTERM to the daemon if that fails); waits for the daemon to exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; umount: RunResult }>;
  /** SIGKILL the daemon, then `fusermount -uz MNT`. */
  kill(): Promise<void>;
  /** Resolves when the daemon has exited. */
  exited: Promise<Exit>;
}

/**
 * Spawn `daxvm mount POOL MNT -f [-o ...]` as a child process and wait until
 * MNT shows in /proc/self/mountinfo with fstype fuse.daxvm.
 */
export async function mountPool(t: Test, pool: string | PoolInfo, options: MountOptions = {}): Promise<Mounted> {
  const poolPath = typeof pool === 'string' ? pool : pool.pool;
  const base = tempDir(t, 'daxvm-mnt-');
  const mnt = options.mnt ?? join(base, 'mnt');
  if (!options.mnt) mkdirSync(mnt);
  const logPath = join(base, 'daemon.log');
  const d = await DaemonMount.start(poolPath, mnt, logPath, {
    ...(options.opts ? { opts: options.opts } : {}),
    ...(options.args ? { args: options.args } : {}),
    env: { ...process.env, DEBUG_COLORS: '0' },
    node: NODE,
    timeoutMs: options.timeoutMs ?? 30_000,
  });

  // Teardown: always unmount and kill; show the daemon's log when the test failed.
  t.teardown(async () => {
    const wasAlive = d.alive;
    d.cleanup();
    if (wasAlive) await within(d.exited, 5000);
    if (!t.passing()) {
      const text = d.log().trim();
      console.error(`--- daemon log for ${mnt} (${t.fullname}) ---\n${text || '(empty)'}\n--- end of daemon log ---`);
    }
    try {
      rmdirSync(mnt);
    } catch {
      /* not empty or still busy: tempDir's teardown retries */
    }
  });

  return {
    mnt,
    pool: poolPath,
    child: d.child,
    logPath,
    log: () => d.log(),
    exited: d.exited,
    async stop() {
      const st = await d.stop();
      const u = { status: st.umount.status, signal: null, stdout: st.umount.stdout, stderr: st.umount.stderr };
      const umount: RunResult = { ...u, summary: summarize(`daxvm umount ${mnt}`, u) };
      if (!st.exit) throw new Error(`daemon for ${mnt} did not exit after umount and SIGTERM\n${umount.summary}\nlog:\n${d.log()}`);
      // The daemon is gone; the kernel mount must be too.
      if (st.stillMounted) throw new Error(`${mnt} still mounted after the daemon exited\n${umount.summary}\nlog:\n${d.log()}`);
      return { ...st.exit, umount };
    },
    kill: () => d.kill(),
  };
}

/** Like run(), but does not block the event loop. */
export function runAsync(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((res) => {
    const c = spawn(cmd, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) c.stdin!.end(opts.input);
    const timer = setTimeout(() => c.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    c.on('error', (err) => {
      stderr += `\n[${err.message}]`;
    });
    c.on('close', (status, signal) => {
      clearTimeout(timer);
      const r = { status, signal, stdout, stderr };
      res({ ...r, summary: summarize([cmd, ...args].join(' '), r) });
    });
  });
}

/** cli() without blocking the event loop, so that independent commands can run side by side. */
export async function cliAsync(args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  const r = await runAsync(NODE[0]!, [...NODE.slice(1), CLI, ...args], opts);
  return { ...r, summary: summarize(`daxvm ${args.join(' ')}`, r) };
}

/**
 * fn over every item, at most `width` at a time, the results in the items'
 * order: independent child processes, which on a loaded machine spend most
 * of their time waiting, not computing.
 */
export async function eachAtOnce<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
  return out;
}

/** `daxvm fsck POOL [args]`. */
export function fsck(pool: string, args: string[] = []): RunResult {
  return cli(['fsck', pool, ...args]);
}

/** Make a pool and mount it: the common case. */
export async function freshMount(t: Test, opts: { size?: string; mount?: MountOptions } = {}): Promise<Mounted & { dir: string }> {
  const p = makePool(t, { size: opts.size });
  const m = await mountPool(t, p, opts.mount);
  return Object.assign(m, { dir: p.dir });
}

/** The errno code of a thrown Node fs error, or 'no error'. */
export function errCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
  return 'no error';
}

/** df numbers of a mount, in 1 KiB blocks. */
export function df(path: string): { size: number; used: number; avail: number } {
  const r = run('df', ['-k', '--output=size,used,avail', path]);
  if (r.status !== 0) throw new Error(r.summary);
  const nums = r.stdout.trim().split('\n')[1]!.trim().split(/\s+/).map(Number);
  return { size: nums[0]!, used: nums[1]!, avail: nums[2]! };
}
