/**
 * Where a running daemon leaves word of itself: a pid file (and, in the
 * background, its log) per mount point, in a runtime directory:
 * /run/daxvm for root, $XDG_RUNTIME_DIR/daxvm or $TMPDIR/daxvm-UID otherwise.
 * Files are named after the mount point, escaped as systemd-escape --path
 * does: /mnt/nvmm1 -> mnt-nvmm1.pid.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function runtimeDir(): string {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return '/run/daxvm';
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'daxvm');
  return path.join(os.tmpdir(), `daxvm-${uid}`);
}

/** systemd-escape --path: strip slashes at the ends, "/" -> "-", other unsafe bytes -> \xNN. */
export function escapeMountpoint(mnt: string): string {
  const trimmed = path.normalize(mnt).replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '-';
  let out = '';
  const bytes = Buffer.from(trimmed);
  for (const [i, c] of bytes.entries()) {
    const ch = String.fromCharCode(c);
    if (ch === '/') out += '-';
    else if (/[A-Za-z0-9:_]/.test(ch) || (ch === '.' && i > 0)) out += ch;
    else out += '\\x' + c.toString(16).padStart(2, '0');
  }
  return out;
}

export function pidFilePath(mnt: string): string {
  return path.join(runtimeDir(), escapeMountpoint(mnt) + '.pid');
}

export function logFilePath(mnt: string): string {
  return path.join(runtimeDir(), escapeMountpoint(mnt) + '.log');
}

export function ensureRuntimeDir(): string {
  const dir = runtimeDir();
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

export function readPidFile(mnt: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(pidFilePath(mnt), 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function writePidFile(mnt: string, pid = process.pid): void {
  ensureRuntimeDir();
  writeFileSync(pidFilePath(mnt), `${pid}\n`);
}

/** Remove the pid file if it still names `pid` (a newer daemon may own it). */
export function removePidFile(mnt: string, pid = process.pid): void {
  if (readPidFile(mnt) === pid) rmSync(pidFilePath(mnt), { force: true });
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
