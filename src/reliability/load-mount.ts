/**
 * Plumbing of the load tests: pools, the daemon in a child process (core's
 * temp-mount harness: `daxvm mount POOL MNT -f`, never in this process, as
 * the harness reads and writes through the mount synchronously), SIGKILL or
 * a clean unmount, `daxvm fsck`, and client processes (fio, and the client
 * scripts beside this file run with this Node). A mount is never left
 * behind: the harness kills and detaches every daemon of this process at
 * the end of a round, at exit, and through a reaper if this process dies.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { daxvmMountAt } from '../core/mountinfo.js';
import { DaemonMount, runCli } from '../core/temp-mount.js';

export { cleanupAll, exitOf, exitWithin, type Exit } from '../core/temp-mount.js';

export function mkfsPool(pool: string, size: string, args: string[] = []): void {
  const r = runCli(['mkfs', pool, '--size', size, '--force', ...args]);
  if (r.status !== 0) throw new Error(`daxvm mkfs ${pool} failed (exit ${r.status}): ${r.stderr.trim()}`);
}

export interface FsckResult {
  exit: number | null;
  problems: string[];
  summary: string;
}

/** `daxvm fsck POOL --json` (read-only): its exit code and the problems it names. */
export function fsckPool(pool: string): FsckResult {
  const r = runCli(['fsck', pool, '--json']);
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

export interface MountOpts {
  /** commit=SECONDS (the group commit interval); undefined: the file system's default. */
  commitSeconds?: number;
  /** How long the daemon may take to show up in mountinfo. */
  timeoutMs?: number;
}

/** A daemon serving `pool` at `mnt` in a child process (core's harness), once the kernel shows the mount. */
export function mountDaemon(pool: string, mnt: string, logPath: string, opts: MountOpts = {}): Promise<DaemonMount> {
  fs.mkdirSync(mnt, { recursive: true });
  if (daxvmMountAt(mnt)) throw new Error(`${mnt} is mounted already`);
  return DaemonMount.start(pool, mnt, logPath, {
    opts: opts.commitSeconds === undefined ? [] : [`commit=${opts.commitSeconds}`],
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
}

/**
 * Clean unmount (`daxvm umount`): ok when it exited 0, the daemon exited 0
 * on its own (it commits and marks the pool clean) and nothing is left
 * mounted; nothing is left mounted either way.
 */
export async function stopDaemon(d: DaemonMount): Promise<{ ok: boolean; detail: string }> {
  const st = await d.stop({ umountTimeoutMs: 90_000 });
  const ok = st.umount.status === 0 && st.forced === 'none' && st.exit?.code === 0 && !st.stillMounted;
  const ended = st.exit ? `exit ${st.exit.code ?? st.exit.signal}${st.forced === 'term' ? ' after SIGTERM' : ''}` : 'still running (killed)';
  const detail = ok ? '' : `daxvm umount exit ${st.umount.status ?? 'none (hung)'} ${st.umount.stderr.trim()}; daemon ${ended}${st.stillMounted ? '; left mounted' : ''}; log:\n${d.log().slice(-1500)}`;
  return { ok, detail };
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
