/**
 * A daemon that dies says why. Installed once at the daemon's start, this
 * writes to the daemon's log (its stderr: the log file of a background mount)
 * a line for each signal received and each uncaught exception (with its
 * stack; for ENOSPC, the host's free space), and one last line at every exit:
 *
 *   daxvm: 2025-01-01T00:00:00.000Z daemon 1234 exits (code 0): received SIGTERM
 *
 * `daxvm mount` and `daxvm info` look for that line when they find a mount
 * dead: a log that ends without one means the daemon was killed outright
 * (SIGKILL, the OOM killer) or crashed in native code (SIGBUS, SIGSEGV),
 * which no handler can report. Self-contained: it imports nothing of ours.
 */
import { statfsSync, writeSync } from 'node:fs';
import path from 'node:path';

/** What `daxvm mount` and `info` match in the log. */
export const EXIT_LINE = /daemon (\d+) exits \((code \d+)\): (.*)$/;

/** Signals the daemon handles itself (it unmounts and closes the pool): we only log them. */
const HANDLED = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
/** Signals whose default action kills: logged, then left to kill as they would have. */
const FATAL = ['SIGQUIT', 'SIGUSR2', 'SIGALRM', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM'] as const;

export interface ExitReport {
  /** Why the daemon is stopping (e.g. "the mount was unmounted"); the last one given is the exit's reason. */
  reason(text: string): void;
}

export interface ExitReportOptions {
  pool: string;
  mountpoint: string;
  /** Where lines go (default: fd 2, synchronously: the 'exit' event allows nothing else). */
  write?: (line: string) => void;
}

let installed: ExitReport | undefined;

/** Host free space of the file system holding the pool, for an ENOSPC report. */
function hostSpace(pool: string): string {
  try {
    const s = statfsSync(path.dirname(pool));
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    return `the host file system holding ${pool} has ${mib(s.bavail * s.bsize)} available of ${mib(s.blocks * s.bsize)}`;
  } catch (err) {
    return `the host's free space could not be read (${(err as Error).message})`;
  }
}

export function installExitReport(opts: ExitReportOptions): ExitReport {
  if (installed) return installed;
  const write = opts.write ?? ((line: string) => {
    try { writeSync(2, line); } catch { /* no log left to write to */ }
  });
  const line = (text: string) => write(`daxvm: ${new Date().toISOString()} daemon ${process.pid} ${text}\n`);
  let signal: string | undefined;
  let error: string | undefined;
  let last: string | undefined;

  for (const sig of HANDLED) {
    process.on(sig, () => {
      signal ??= sig;
      line(`received ${sig}: unmounting ${opts.mountpoint}`);
    });
  }
  for (const sig of FATAL) {
    const onSignal = (): void => {
      line(`received ${sig}: it kills the daemon; ${opts.mountpoint} is left dead`);
      signal = sig;
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig); // the default action, as without us
    };
    process.on(sig, onSignal);
  }
  process.on('uncaughtExceptionMonitor', (err: Error, origin: string) => {
    const code = (err as NodeJS.ErrnoException)?.code;
    const what = origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception';
    error ??= `${what}${code ? ` (${code})` : ''}: ${err?.message ?? String(err)}`;
    line(`${what}: ${err?.stack ?? String(err)}`);
    if (code === 'ENOSPC') line(`ENOSPC: ${hostSpace(opts.pool)}`);
  });
  process.on('exit', (code: number) => {
    const why = error ?? (signal ? `received ${signal}` : last ?? 'the daemon returned');
    line(`exits (code ${code}): ${why}`);
  });
  installed = {
    reason(text: string) {
      last = text;
      if (/ENOSPC/.test(text)) line(`ENOSPC: ${hostSpace(opts.pool)}`);
    },
  };
  return installed;
}
