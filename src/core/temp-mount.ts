/**
 * The one harness that mounts a pool with a daemon in a CHILD process, for
 * tests, benchmarks and the load tools. The daemon is a black box started
 * through the CLI (`daxvm mount POOL MNT -f`): a daemon must never serve a
 * synchronous call from its own process, and the callers read and write
 * through the mount synchronously.
 *
 * - The daemon's stdout and stderr go to a log file, not a pipe: a caller
 *   blocked in spawnSync (cp, dd...) while the daemon serves it would
 *   deadlock on a daemon stuck writing to a full pipe.
 * - Ready means /proc/self/mountinfo shows fuse.daxvm at the mount point.
 * - A mount is never left behind: `stop()` unmounts cleanly (`daxvm umount`),
 *   `kill()` and `cleanup()` SIGKILL the daemon and `fusermount -uz` the
 *   mount point; every live mount is cleaned up from an 'exit' hook, and by a
 *   detached reaper shell if this process dies without running it (SIGKILL,
 *   a test runner's timeout).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MountStartError } from './errors.js';
import { FSTYPE, readMounts, topMountAt } from './mountinfo.js';
import { DAEMON_NODE_FLAGS } from './daemon-flags.js';
import { mainScript } from './paths.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when the child has exited (at once if it has). */
export function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
}

/** The child's exit, or null after `ms` (the timer does not keep the process alive). */
export async function exitWithin(child: ChildProcess, ms: number): Promise<Exit | null> {
  const ac = new AbortController();
  const timeout = sleep(ms, null, { signal: ac.signal }).catch(() => null);
  const r = await Promise.race([exitOf(child), timeout]);
  ac.abort();
  return r;
}

/** The file system type mounted (visible) at `mnt`, if any. */
export function fstypeAt(mnt: string): string | undefined {
  return topMountAt(mnt, readMounts())?.fstype;
}

/**
 * A detached shell per mount that waits for EOF on its stdin, which comes
 * when this process dies in any way. Then it kills the daemon (if that pid is
 * still a daemon for this mount point) and lazily unmounts. A line on its
 * stdin dismisses it.
 */
const REAPER = `
if read -r _; then exit 0; fi
sleep 0.2
if [ -r "/proc/$2/cmdline" ] && tr '\\0' ' ' < "/proc/$2/cmdline" | grep -qF -- " $1 "; then kill -9 "$2" 2>/dev/null; fi
if grep -qF -- " $1 " /proc/self/mountinfo; then fusermount -uz "$1" 2>/dev/null; fi
exit 0
`;

function spawnReaper(mnt: string, pid: number): ChildProcess {
  const r = spawn('sh', ['-c', REAPER, 'daxvm-reaper', mnt, String(pid)], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  r.unref();
  (r.stdin as unknown as { unref?: () => void }).unref?.();
  r.stdin?.on('error', () => undefined); // the reaper may be gone already
  return r;
}

function lazyUnmount(mnt: string): void {
  if (fstypeAt(mnt) === FSTYPE) spawnSync('fusermount', ['-uz', '--', mnt], { stdio: 'ignore' });
}

const live = new Set<DaemonMount>();
let hooked = false;

/** Kill every daemon of this process and detach its mount (also run at exit). */
export function cleanupAll(): void {
  for (const m of [...live]) m.cleanup();
}

/** Clean up the mounts of this process under `dir`, and lazily unmount any FUSE mount left there. */
export function unmountAllUnder(dir: string): void {
  const under = (p: string): boolean => p === dir || p.startsWith(dir + '/');
  for (const m of [...live]) if (under(m.mnt)) m.cleanup();
  for (const e of readMounts()) if (e.fstype.startsWith('fuse') && under(e.mountpoint)) spawnSync('fusermount', ['-uz', '--', e.mountpoint], { stdio: 'ignore' });
}

export interface DaemonOptions {
  /** `-o` options, e.g. ['ro'] or ['commit=1']. */
  opts?: string[];
  /** More arguments for `daxvm mount`. */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /**
   * The command that starts node, for the daemon and `daxvm umount` (default: this node). Tests pass
   * `env -u NODE_OPTIONS NODE`: a test runner's NODE_OPTIONS hooks may follow every child and slow its start.
   */
  node?: readonly string[];
  /** How long the daemon may take to show up in mountinfo (default 30 s). */
  timeoutMs?: number;
}

export interface StopResult {
  /** `daxvm umount MNT`. */
  umount: { status: number | null; stdout: string; stderr: string };
  /** How the daemon ended; null when it had to be killed. */
  exit: Exit | null;
  /** What it took: nothing, SIGTERM, or SIGKILL. */
  forced: 'none' | 'term' | 'kill';
  /** The mount point still showed the mount after the daemon exited (it is detached now). */
  stillMounted: boolean;
}

/** A daemon serving `pool` at `mnt`, running in a child process. */
export class DaemonMount {
  readonly exited: Promise<Exit>;
  private readonly reaper: ChildProcess;

  private constructor(readonly pool: string, readonly mnt: string, readonly child: ChildProcess, readonly logPath: string, readonly command: string,
    private readonly node: readonly string[]) {
    this.exited = exitOf(child);
    this.reaper = spawnReaper(mnt, child.pid ?? -1);
    live.add(this);
    if (!hooked) {
      hooked = true;
      process.on('exit', cleanupAll);
    }
  }

  /**
   * Start `daxvm mount POOL MNT -f` (its output appended to `logPath`) and
   * wait until the kernel shows the mount. The mount point is the caller's
   * to make (a test may hand the daemon a bad one on purpose).
   */
  static async start(pool: string, mnt: string, logPath: string, o: DaemonOptions = {}): Promise<DaemonMount> {
    const args = [mainScript(), 'mount', pool, mnt, '-f'];
    if (o.opts?.length) args.push('-o', o.opts.join(','));
    args.push(...(o.args ?? []));
    const logFd = openSync(logPath, 'a');
    const [node, ...pre] = o.node ?? [process.execPath, ...DAEMON_NODE_FLAGS];
    const child = spawn(node!, [...pre, ...args], { stdio: ['ignore', logFd, logFd], env: o.env ?? process.env });
    closeSync(logFd);
    const m = new DaemonMount(pool, mnt, child, logPath, `node ${args.join(' ')}`, o.node ?? [process.execPath]);
    const timeoutMs = o.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const fstype = fstypeAt(mnt);
      if (fstype === FSTYPE) return m;
      if (child.exitCode !== null || child.signalCode !== null) {
        m.cleanup();
        const log = m.log();
        const reason = failureReason(log) ?? `daxvm mount exited (code ${child.exitCode}, signal ${child.signalCode})`;
        const hint = /^hint: (.*)$/m.exec(log)?.[1];
        throw new MountStartError(`daxvm mount exited (code ${child.exitCode}, signal ${child.signalCode}) before ${mnt} was mounted\ncommand: ${m.command}\nlog:\n${log.slice(-4000)}`,
          reason, hint);
      }
      if (Date.now() > deadline) {
        m.cleanup();
        const seen = fstype ? ` (mounted with fstype ${fstype}, expected ${FSTYPE})` : '';
        throw new Error(`mount of ${pool} at ${mnt} not ready after ${timeoutMs} ms${seen}\ncommand: ${m.command}\nlog:\n${m.log().slice(-4000)}`);
      }
      // 10 ms: a daemon mounts ~0.5-1 s after its start, and each start here waited for the next look (25 ms on
      // average at 50; the test suite mounts ~200 times); a look is one read of /proc/self/mountinfo, 0.3 ms.
      await sleep(10);
    }
  }

  /** The daemon's log so far. */
  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Clean unmount: `daxvm umount MNT` (the daemon commits, marks the pool
   * clean and exits); SIGTERM if it has not exited after `exitTimeoutMs`,
   * SIGKILL 10 s later. Whatever happens, nothing is left mounted after.
   */
  async stop(o: { umountTimeoutMs?: number; exitTimeoutMs?: number } = {}): Promise<StopResult> {
    // Not spawnSync: the daemon is our child, and `daxvm umount` waits for it to be gone, which takes our event loop reaping it.
    const [node, ...pre] = this.node;
    const um = spawn(node!, [...pre, mainScript(), 'umount', this.mnt], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    um.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    um.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    // 'close', not 'exit': its output is all read by then.
    const closed = new Promise<Exit>((res) => um.once('close', (code, signal) => res({ code, signal })));
    const ac = new AbortController();
    const umExit = await Promise.race([closed, sleep(o.umountTimeoutMs ?? 120_000, null, { signal: ac.signal }).catch(() => null)]);
    ac.abort();
    if (!umExit) um.kill('SIGKILL');
    let forced: StopResult['forced'] = 'none';
    // A refused umount (busy: exit 32) leaves the daemon running: no use waiting for it.
    let exit = await exitWithin(this.child, umExit && umExit.code !== 0 ? 0 : o.exitTimeoutMs ?? 30_000);
    if (!exit) {
      forced = 'term';
      this.child.kill('SIGTERM');
      exit = await exitWithin(this.child, 10_000);
    }
    if (!exit) forced = 'kill';
    const stillMounted = exit !== null && fstypeAt(this.mnt) === FSTYPE;
    this.cleanup();
    if (!exit) await this.exited;
    return { umount: { status: umExit?.code ?? null, stdout, stderr: stderr + (umExit ? '' : '\n[daxvm umount hung; killed]') }, exit, forced, stillMounted };
  }

  /** SIGKILL the daemon, wait for it, `fusermount -uz` the mount point. */
  async kill(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
    this.cleanup();
  }

  /** Synchronous, safe from an 'exit' hook: SIGKILL the daemon if alive, detach the mount, dismiss the reaper. Idempotent. */
  cleanup(): void {
    if (this.alive) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    lazyUnmount(this.mnt);
    live.delete(this);
    if (this.reaper.stdin && !this.reaper.stdin.destroyed) this.reaper.stdin.end('done\n');
  }
}

/** Run the CLI to completion: `node dist/cli/main.js ARGS`. */
export function runCli(args: string[], timeoutMs = 300_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [mainScript(), ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? `\n[${r.error.message}]` : '') };
}

/**
 * A sparse pool of `size` (e.g. '2G') made with `daxvm mkfs` in a new
 * directory under `hostDir`, mounted at `<dir>/mnt`; `close()` unmounts and
 * removes the directory, `kill()` (synchronous, for exit hooks and signal
 * handlers) does the same the hard way.
 */
export class TempMount {
  private static readonly live = new Set<TempMount>();

  private constructor(readonly base: string, readonly pool: string, readonly daemon: DaemonMount) {
    if (TempMount.live.size === 0) process.once('exit', () => { for (const m of [...TempMount.live]) m.kill(); });
    TempMount.live.add(this);
  }

  get mnt(): string {
    return this.daemon.mnt;
  }

  /** The daemon's pid (it runs in the foreground as our child). */
  get pid(): number | undefined {
    return this.daemon.child.pid;
  }

  static async create(hostDir: string, size: string, prefix = 'daxvm-temp-', o: DaemonOptions = {}): Promise<TempMount> {
    const base = mkdtempSync(join(hostDir, prefix));
    const pool = join(base, 'pool.daxvm');
    try {
      const mk = runCli(['mkfs', pool, '--size', size]);
      if (mk.status !== 0) throw new Error(`mkfs of a ${size} pool in ${hostDir} failed: ${mk.stderr.trim()}`);
      const mnt = join(base, 'mnt');
      mkdirSync(mnt);
      return new TempMount(base, pool, await DaemonMount.start(pool, mnt, join(base, 'daemon.log'), o));
    } catch (err) {
      rmSync(base, { recursive: true, force: true });
      throw err;
    }
  }

  /** `daxvm umount` (the daemon commits and exits), then the directory goes. */
  async close(): Promise<StopResult> {
    try {
      return await this.daemon.stop({ exitTimeoutMs: 60_000 });
    } finally {
      this.kill();
    }
  }

  /** Last resort, synchronous: kill the daemon, lazy-unmount, remove the pool. Idempotent. */
  kill(): void {
    this.daemon.cleanup();
    rmSync(this.base, { recursive: true, force: true });
    TempMount.live.delete(this);
  }
}

/**
 * The daemon's own reason for failing, from its log: the message its hint
 * follows, else its last message. Its "daxvm: <timestamp> ..." lines are its
 * diary and "daxvm: warning: ..." lines did not stop it: neither is the reason.
 */
export function failureReason(log: string): string | undefined {
  const messages = [...log.matchAll(/^daxvm: (?!\d{4}-\d\d-\d\dT|warning: )(.*)$(\nhint: )?/gm)];
  return (messages.find((m) => m[2] !== undefined) ?? messages.at(-1))?.[1];
}
