/**
 * Mount harness for integration tests: temp pools made with the built CLI, and
 * the daemon run as a CHILD PROCESS in the foreground (the daemon must never
 * make a synchronous call into its own mount, and neither may a process that
 * hosts it, so tests never mount in-process).
 *
 * The daemon's stdout/stderr go to a log file, not a pipe: tests block in
 * spawnSync (cp, dd...) while the daemon serves them, and a daemon stuck on a
 * full pipe would deadlock the test. The log is printed when a test fails.
 *
 * Every mount is unmounted (`fusermount -uz`) and its daemon killed in
 * t.teardown, even when the test failed, and again from a process 'exit' hook
 * as a last resort. `.ci/run` sweeps any fuse.daxvm mount that survives a
 * crashed test process.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');
export const FSTYPE = 'fuse.daxvm';

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
  const r = run(process.execPath, [CLI, ...args], opts);
  return { ...r, summary: summarize(`daxvm ${args.join(' ')}`, r) };
}

/** A temp directory under os.tmpdir(), removed at teardown. */
export function tempDir(t: Test, prefix = 'daxvm-test-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  t.teardown(() => {
    unmountAllUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

export interface PoolInfo {
  /** The temp directory holding the pool (and nothing of anyone else's). */
  dir: string;
  /** Path of the pool file. */
  pool: string;
}

/** `daxvm mkfs POOL --size SIZE` into a fresh temp dir; removed at teardown. */
export function makePool(t: Test, opts: { size?: string; args?: string[] } = {}): PoolInfo {
  const dir = tempDir(t, 'daxvm-pool-');
  const pool = join(dir, 'pool.daxvm');
  const r = cli(['mkfs', pool, '--size', opts.size ?? '256M', ...(opts.args ?? [])]);
  if (r.status !== 0) throw new Error(`mkfs failed\n${r.summary}`);
  return { dir, pool };
}

/** One line of /proc/self/mountinfo, the fields we use. */
export interface MountEntry {
  mountPoint: string;
  fstype: string;
  source: string;
  options: string;
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mountEntries(): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    // id parent maj:min root mountpoint options [optional...] - fstype source superopts
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    out.push({
      mountPoint: unescapeMountinfo(l[4] ?? ''),
      options: l[5] ?? '',
      fstype: r[0] ?? '',
      source: unescapeMountinfo(r[1] ?? ''),
    });
  }
  return out;
}

export function mountEntry(mnt: string): MountEntry | undefined {
  return mountEntries().find((e) => e.mountPoint === mnt);
}

export function isMounted(mnt: string): boolean {
  return mountEntry(mnt) !== undefined;
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
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Live {
  mnt: string;
  child: ChildProcess;
  reaper: ChildProcess;
}
const live = new Set<Live>();

/**
 * The reaper: a detached shell per mount that waits for EOF on its stdin,
 * which comes when this test process dies in any way (even SIGKILL, or tap's
 * timeout signal, when no 'exit' hook runs). Then it kills the daemon (if that
 * pid is still our daemon for this mount point) and lazily unmounts. A line on
 * its stdin dismisses it.
 */
const REAPER = `
if read -r _; then exit 0; fi
sleep 0.2
if [ -r "/proc/$2/cmdline" ] && tr '\\0' ' ' < "/proc/$2/cmdline" | grep -qF -- " $1 "; then kill -9 "$2" 2>/dev/null; fi
if grep -qF -- " $1 " /proc/self/mountinfo; then fusermount -uz "$1" 2>/dev/null; fi
exit 0
`;

function spawnReaper(mnt: string, pid: number): ChildProcess {
  const r = spawn('sh', ['-c', REAPER, 'daxvm-test-reaper', mnt, String(pid)], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  r.unref();
  (r.stdin as unknown as { unref?: () => void }).unref?.();
  r.stdin!.on('error', () => {
    /* the reaper may be gone already */
  });
  return r;
}

/** Forget a mount: it is cleaned up; dismiss its reaper. */
function retire(l: Live): void {
  live.delete(l);
  if (l.reaper.stdin && !l.reaper.stdin.destroyed) l.reaper.stdin.end('done\n');
}
let exitHookInstalled = false;

function lazyUnmount(mnt: string): void {
  if (isMounted(mnt)) spawnSync('fusermount', ['-uz', mnt], { stdio: 'ignore' });
}

function forceCleanup(l: Live): void {
  if (l.child.exitCode === null && l.child.signalCode === null) {
    try {
      l.child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  lazyUnmount(l.mnt);
  retire(l);
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const l of [...live]) forceCleanup(l);
  });
}

/** Unmount (lazily) every mount whose mount point lies under `dir`. */
export function unmountAllUnder(dir: string): void {
  for (const l of [...live]) if (l.mnt === dir || l.mnt.startsWith(dir + '/')) forceCleanup(l);
  for (const e of mountEntries()) {
    if (e.mountPoint === dir || e.mountPoint.startsWith(dir + '/')) {
      spawnSync('fusermount', ['-uz', e.mountPoint], { stdio: 'ignore' });
    }
  }
}

/**
 * Spawn `daxvm mount POOL MNT -f [-o ...]` as a child process and wait until
 * MNT shows in /proc/self/mountinfo with fstype fuse.daxvm.
 */
export async function mountPool(t: Test, pool: string | PoolInfo, options: MountOptions = {}): Promise<Mounted> {
  installExitHook();
  const poolPath = typeof pool === 'string' ? pool : pool.pool;
  const base = tempDir(t, 'daxvm-mnt-');
  const mnt = options.mnt ?? join(base, 'mnt');
  if (!options.mnt) spawnSync('mkdir', ['-p', mnt]);
  const logPath = join(base, 'daemon.log');
  const logFd = openSync(logPath, 'a');
  const args = [CLI, 'mount', poolPath, mnt, '-f'];
  if (options.opts?.length) args.push('-o', options.opts.join(','));
  args.push(...(options.args ?? []));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, DEBUG_COLORS: '0' },
  });
  closeSync(logFd);
  const entry: Live = { mnt, child, reaper: spawnReaper(mnt, child.pid ?? -1) };
  live.add(entry);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
    if (child.exitCode !== null || child.signalCode !== null) res({ code: child.exitCode, signal: child.signalCode });
    child.once('exit', (code, signal) => res({ code, signal }));
  });
  const log = () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');

  // Teardown: always unmount and kill; show the daemon's log when the test failed.
  t.teardown(async () => {
    const wasLive = live.has(entry);
    forceCleanup(entry);
    if (wasLive) await within(exited, 5000);
    if (!t.passing()) {
      const text = log().trim();
      console.error(`--- daemon log for ${mnt} (${t.fullname}) ---\n${text || '(empty)'}\n--- end of daemon log ---`);
    }
    try {
      rmdirSync(mnt);
    } catch {
      /* not empty or still busy: tempDir's teardown retries */
    }
  });

  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void exited.then((e) => (exitInfo = e));
  for (;;) {
    const e = mountEntry(mnt);
    if (e && e.fstype === FSTYPE) break;
    if (exitInfo) {
      const ei = exitInfo as { code: number | null; signal: NodeJS.Signals | null };
      throw new Error(
        `daxvm mount exited (code ${ei.code}, signal ${ei.signal}) before ${mnt} was mounted\n` +
          `command: node ${args.join(' ')}\nlog:\n${log()}`,
      );
    }
    if (Date.now() > deadline) {
      const seen = e ? ` (mounted with fstype ${e.fstype}, expected ${FSTYPE})` : '';
      forceCleanup(entry);
      throw new Error(`mount of ${poolPath} at ${mnt} not ready after ${timeoutMs} ms${seen}\ncommand: node ${args.join(' ')}\nlog:\n${log()}`);
    }
    await sleep(e ? 20 : 50);
  }

  const mounted: Mounted = {
    mnt,
    pool: poolPath,
    child,
    logPath,
    log,
    exited,
    async stop() {
      const umount = await runAsync(process.execPath, [CLI, 'umount', mnt]);
      let res = await within(exited, 30_000);
      if (!res) {
        child.kill('SIGTERM');
        res = await within(exited, 10_000);
      }
      if (!res) {
        forceCleanup(entry);
        throw new Error(`daemon for ${mnt} did not exit after umount and SIGTERM\n${umount.summary}\nlog:\n${log()}`);
      }
      // The daemon is gone; the kernel mount must be too.
      const still = isMounted(mnt);
      retire(entry);
      if (still) {
        lazyUnmount(mnt);
        throw new Error(`${mnt} still mounted after the daemon exited\n${umount.summary}\nlog:\n${log()}`);
      }
      return { ...res, umount };
    },
    async kill() {
      child.kill('SIGKILL');
      await exited;
      lazyUnmount(mnt);
      retire(entry);
    },
  };
  return mounted;
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
