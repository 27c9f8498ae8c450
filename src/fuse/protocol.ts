/**
 * How a background daemon tells `daxvm mount` (its parent) that the mount is
 * ready or why it failed: JSON lines on an inherited pipe (fd 3 by default,
 * `--ready-fd N`). The daemon writes exactly one message, then closes the fd:
 *   {"event":"ready","pid":1234}
 *   {"event":"error","message":"...","hint":"...","exitCode":32}
 * The parent then checks the mount itself (stat from another process; the
 * daemon never stats its own mount) before returning 0.
 */
import { closeSync, writeSync } from 'node:fs';

export type DaemonMessage =
  | { event: 'ready'; pid: number }
  | { event: 'error'; message: string; hint?: string; exitCode: number };

export function encodeMessage(m: DaemonMessage): string {
  return JSON.stringify(m) + '\n';
}

/** Messages in the text read so far; incomplete trailing lines are left for later. */
export function decodeMessages(text: string): DaemonMessage[] {
  const out: DaemonMessage[] = [];
  for (const line of text.split('\n').slice(0, -1)) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as DaemonMessage;
      if (m && (m.event === 'ready' || m.event === 'error')) out.push(m);
    } catch { /* not ours */ }
  }
  return out;
}

/** The daemon's end. Without an fd (plain foreground), failures go to stderr. */
export class ReadyChannel {
  private fd: number | undefined;
  constructor(fd?: number) {
    this.fd = fd;
  }

  get attached(): boolean {
    return this.fd !== undefined;
  }

  ready(): void {
    this.send({ event: 'ready', pid: process.pid });
  }

  fail(message: string, hint: string | undefined, exitCode: number): void {
    if (this.fd === undefined) {
      process.stderr.write(`daxvm: ${message}\n` + (hint ? `hint: ${hint}\n` : ''));
      return;
    }
    this.send({ event: 'error', message, ...(hint ? { hint } : {}), exitCode });
  }

  private send(m: DaemonMessage): void {
    if (this.fd === undefined) return;
    try {
      writeSync(this.fd, encodeMessage(m));
    } catch { /* parent gone */ }
    try {
      closeSync(this.fd);
    } catch { /* already closed */ }
    this.fd = undefined;
  }
}
