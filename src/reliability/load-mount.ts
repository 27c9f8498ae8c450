/**
 * Plumbing of the load tests: pools, the daemon in a child process
 * (`daxvm mount POOL MNT -f`, never in this process: the harness reads and
 * writes through the mount synchronously), SIGKILL or a clean unmount,
 * `daxvm fsck`, and client processes (fio, and the client scripts beside
 * this file run with this Node).
 *
 * A mount is never left behind: every daemon is killed and its mount point
 * lazily unmounted when the round ends, from an 'exit' hook, and by a
 * detached reaper shell if this process dies without running either
 * (SIGKILL, a test runner's timeout).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { daxvmMountAt } from '../fuse/mountinfo.js';
import { mainScript } from '../cli/paths.js';

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

/** Run the CLI (`node dist/cli/main.js ARGS`) to completion. */
export function cli(args: string[], timeoutMs = 300_000): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [mainScript(), ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? `\n[${r.error.message}]` : '') };
}

export function mkfsPool(pool: string, size: string): void {
  const r = cli(['mkfs', pool, '--size', size, '--force']);
  if (r.status !== 0) throw new Error(`daxvm mkfs ${pool} failed (exit ${r.status}): ${r.stderr.trim()}`);
}

export interface FsckResult {
  exit: number | null;
  problems: string[];
  summary: string;
}

/** `daxvm fsck POOL --json` (read-only): its exit code and the problems it names. */
export function fsckPool(pool: string): FsckResult {
  const r = cli(['fsck', pool, '--json']);
  try {
    const rep = JSON.parse(r.stdout) as { problems: Array<{ kind: string; message: string }>; summary: Record<string, number> };
    return {
      exit: r.status,
      problems: rep.problems.map((p) => `${p.kind}: ${p.message}`),
      summary: Object.entries(rep.summary).map(([k, v]) => `${k} ${v}`).join(', '),
    };
  } catch {
    return { exit: r.status, problems: [`no report: ${r.stderr.trim().slice(0, 500)}`], summary: '' };
  }
}

const REAPER = `
if read -r _; then exit 0; fi
if [ -r "/proc/$2/cmdline" ] && tr '\\0' ' ' < "/proc/$2/cmdline" | grep -qF -- " $1 "; then kill -9 "$2" 2>/dev/null; fi
sleep 0.2
if grep -qF -- " $1 " /proc/self/mountinfo; then fusermount -uz "$1" 2>/dev/null; fi
exit 0
`;

const live = new Set<Daemon>();
let hooked = false;

function lazyUnmount(mnt: string): void {
  if (daxvmMountAt(mnt)) spawnSync('fusermount', ['-uz', '--', mnt], { stdio: 'ignore' });
}

/** Kill every daemon of ours and detach its mount (also run at exit). */
export function cleanupAll(): void {
  for (const d of [...live]) d.forget(true);
}

export interface MountOpts {
  /** commit=SECONDS (the group commit interval); undefined: the file system's default. */
  commitSeconds?: number;
  /** How long the daemon may take to show up in mountinfo. */
  timeoutMs?: number;
}

/** A daemon serving `pool` at `mnt`, running in a child process. */
export class Daemon {
  readonly exited: Promise<Exit>;
  private reaper: ChildProcess;

  private constructor(readonly pool: string, readonly mnt: string, readonly child: ChildProcess, readonly logPath: string) {
    this.exited = exitOf(child);
    this.reaper = spawn('sh', ['-c', REAPER, 'daxvm-load-reaper', mnt, String(child.pid ?? -1)], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    this.reaper.unref();
    (this.reaper.stdin as unknown as { unref?: () => void }).unref?.();
    this.reaper.stdin!.on('error', () => undefined);
    live.add(this);
    if (!hooked) {
      hooked = true;
      process.on('exit', cleanupAll);
    }
  }

  /** Mount `pool` at `mnt` and wait until the kernel shows the mount. */
  static async mount(pool: string, mnt: string, logPath: string, opts: MountOpts = {}): Promise<Daemon> {
    fs.mkdirSync(mnt, { recursive: true });
    if (daxvmMountAt(mnt)) throw new Error(`${mnt} is mounted already`);
    const logFd = fs.openSync(logPath, 'a');
    const args = [mainScript(), 'mount', pool, mnt, '-f'];
    if (opts.commitSeconds !== undefined) args.push('-o', `commit=${opts.commitSeconds}`);
    const child = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd] });
    fs.closeSync(logFd);
    const d = new Daemon(pool, mnt, child, logPath);
    const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
    for (;;) {
      if (daxvmMountAt(mnt)) return d;
      if (child.exitCode !== null || child.signalCode !== null) {
        d.forget(false);
        throw new Error(`the daemon exited (${child.exitCode ?? child.signalCode}) before ${mnt} was mounted; its log:\n${d.log().slice(-2000)}`);
      }
      if (Date.now() > deadline) {
        d.forget(true);
        throw new Error(`${mnt} not mounted ${opts.timeoutMs ?? 60_000} ms after starting the daemon; its log:\n${d.log().slice(-2000)}`);
      }
      await sleep(20);
    }
  }

  log(): string {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGKILL the daemon, wait for it, `fusermount -uz` the mount point. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
    this.forget(true);
  }

  /** Clean unmount (`daxvm umount`): the daemon commits, marks the pool clean and exits 0. */
  async stop(): Promise<{ ok: boolean; detail: string }> {
    const child = spawn(process.execPath, [mainScript(), 'umount', this.mnt], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
    const um = await exitWithin(child, 90_000);
    const ex = await Promise.race([this.exited, sleep(30_000, null)]);
    const ok = um?.code === 0 && ex !== null && ex.code === 0 && !daxvmMountAt(this.mnt);
    const detail = ok ? '' : `daxvm umount exit ${um?.code ?? 'none (hung)'} ${err.trim()}; daemon ${ex ? `exit ${ex.code ?? ex.signal}` : 'still running'}; log:\n${this.log().slice(-1500)}`;
    this.forget(true);
    return { ok, detail };
  }

  /** Whatever state it is in: kill it (if asked), detach the mount, dismiss the reaper. */
  forget(kill: boolean): void {
    if (kill && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    lazyUnmount(this.mnt);
    live.delete(this);
    if (this.reaper.stdin && !this.reaper.stdin.destroyed) this.reaper.stdin.end('done\n');
  }
}

/** A client script beside this module, run the way this one runs (JavaScript from dist, TypeScript under tap). */
export function clientScript(name: string): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const ext = path.extname(here);
  return { file: path.join(path.dirname(here), `${name}${ext}`), execArgv: ext === '.ts' ? process.execArgv : [] };
}

/** Spawn a client script with one JSON argument; its stdout and stderr go to `out`. */
export function spawnClient(name: string, arg: unknown, out: string, cwd?: string): ChildProcess {
  const s = clientScript(name);
  const fd = fs.openSync(out, 'a');
  try {
    return spawn(process.execPath, [...s.execArgv, s.file, JSON.stringify(arg)], { stdio: ['ignore', fd, fd], ...(cwd ? { cwd } : {}) });
  } finally {
    fs.closeSync(fd);
  }
}

/** Free and total bytes of the file system at `p`, as df sees them (statfs). */
export function statfsBytes(p: string): { free: number; avail: number; total: number } {
  const s = fs.statfsSync(p);
  return { free: s.bfree * s.bsize, avail: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

/** Read a JSON-lines log (a client's), skipping a torn last line. */
export function readJsonLines<T>(file: string): T[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // the last line of a client that died mid-write
    }
  }
  return out;
}
