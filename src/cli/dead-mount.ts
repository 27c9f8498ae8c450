/**
 * A dead mount: the kernel still lists the daxvm mount but its daemon is
 * gone, so every access answers ENOTCONN ("transport endpoint is not
 * connected"). `daxvm mount` and `daxvm info` recognise it, say so, quote
 * the end of the daemon's log (the exit report's last line says why it
 * died; no such line means it was killed outright or crashed) and give the
 * one command that clears it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { EXIT_LINE } from '../fuse/exit-report.js';
import { logFilePath, processAlive, readPidFile, removePidFile } from '../fuse/runtime.js';

/** A live daemon answers a statfs at once; a dead mount answers ENOTCONN at once. */
const STAT_TIMEOUT_MS = 5000;

export type MountHealth = 'alive' | 'dead' | 'unresponsive';

/**
 * statfs of the mount point from this process (never from a daemon: it
 * would call into its own mount). statfs always reaches the daemon; a stat
 * may be answered from the kernel's attribute cache, even on a dead mount.
 */
export async function mountHealth(mnt: string): Promise<MountHealth> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'unresponsive'>(resolve => { timer = setTimeout(() => resolve('unresponsive'), STAT_TIMEOUT_MS); });
  const probe = statfs(mnt).then(() => 'alive' as const, (err: NodeJS.ErrnoException) =>
    err.code === 'ENOTCONN' ? 'dead' as const : 'alive' as const);
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
    timer?.unref();
  }
}

/** fusermount3 where the old one is absent (libfuse 3 only). */
function fusermountName(): string {
  const dirs = (process.env.PATH ?? '/usr/bin:/bin').split(':');
  const has = (c: string) => dirs.some(d => d && existsSync(path.join(d, c)));
  return has('fusermount') || !has('fusermount3') ? 'fusermount' : 'fusermount3';
}

/** The one command that clears a dead mount. */
export function clearCommand(mnt: string): string {
  return `${fusermountName()} -uz ${mnt}`;
}

export async function clearDeadMount(mnt: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile(fusermountName(), ['-uz', '--', mnt], (err, _out, stderr) => {
      if (err) reject(new Error(String(stderr).trim() || err.message));
      else resolve();
    });
  });
  const pid = readPidFile(mnt);
  if (pid !== undefined && !processAlive(pid)) removePidFile(mnt, pid);
}

/** What is known of the daemon that served `mnt`: its pid, its log, the log's last lines since its start. */
export function postmortem(mnt: string, maxLines = 12): { pid?: number; logPath: string; tail: string[]; exitLine?: string } {
  const pid = readPidFile(mnt);
  const logPath = logFilePath(mnt);
  let lines: string[] = [];
  try {
    lines = readFileSync(logPath, 'utf8').split('\n').filter(l => l.trim() !== '');
  } catch { /* no log: a foreground daemon logs to its own stderr */ }
  // The background parent starts each run's section with "--- DATE daxvm mount POOL MNT".
  const start = lines.map(l => l.startsWith('--- ')).lastIndexOf(true);
  const section = start >= 0 ? lines.slice(start) : lines;
  const exitLine = [...section].reverse().find(l => EXIT_LINE.test(l));
  return { ...(pid !== undefined ? { pid } : {}), logPath, tail: section.slice(-maxLines), ...(exitLine ? { exitLine } : {}) };
}

/** The explanation, for stderr: dead, why if the log says, the log's end. */
export function describeDeadMount(mnt: string): string {
  const pm = postmortem(mnt);
  const out = [`${mnt} is a dead daxvm mount: its daemon${pm.pid ? ` (pid ${pm.pid})` : ''} is gone (transport endpoint is not connected)`];
  if (pm.tail.length === 0) {
    out.push(`no daemon log at ${pm.logPath} (a daemon run with -f logs to its own stderr)`);
  } else {
    const m = pm.exitLine ? EXIT_LINE.exec(pm.exitLine) : null;
    out.push(m ? `its log says it exited (${m[2]}): ${m[3]}`
      : 'its log has no exit line: it was killed outright (SIGKILL, the OOM killer) or crashed in native code (SIGBUS, SIGSEGV)');
    out.push(`last lines of ${pm.logPath}:`, ...pm.tail.map(l => `  ${l}`));
  }
  return out.join('\n');
}

/** On a terminal, ask; elsewhere the answer is no. */
export async function askYes(question: string): Promise<boolean> {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}
