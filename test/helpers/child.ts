/**
 * A child process that speaks a line protocol: it runs a Node script, we
 * send commands on its stdin and read one answer line each. Used by the
 * tests that hold files open through the mount while something else happens.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Test } from 'tap';
import { df, NODE, sleep } from './mount.js';

export interface LineChild {
  child: ChildProcessWithoutNullStreams;
  /** The next answer line (throws if the child died or 30 s pass). */
  next(): Promise<string>;
  /** Send a command and wait for its answer. */
  send(cmd: string): Promise<string>;
  exited(): Promise<unknown>;
}

export function lineChild(t: Test, script: string, args: string[]): LineChild {
  // NODE: without tap's NODE_OPTIONS, which costs each node child its start-up time (see mount.ts).
  const child = spawn(NODE[0]!, [...NODE.slice(1), '-e', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const lines: string[] = [];
  let buf = '';
  let wake: (() => void) | undefined;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake?.();
  });
  // 'close', not 'exit': a child that prints its answer and exits at once ('closed') may be seen to exit
  // before its last line is read; 'close' comes after its output has all been read.
  let closed = false;
  child.once('close', () => {
    closed = true;
    wake?.();
  });
  const next = async (): Promise<string> => {
    const end = Date.now() + 30_000;
    while (lines.length === 0) {
      if (closed) throw new Error(`child exited: ${err}`);
      if (Date.now() > end) throw new Error('child timed out');
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200).unref();
      });
    }
    return lines.shift()!;
  };
  return {
    child,
    next,
    async send(cmd: string) {
      child.stdin.write(cmd + '\n');
      return next();
    },
    exited: () => new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r))),
  };
}

/**
 * A child holding path open for appending (O_APPEND): it answers 'open'
 * first; then each line sent is written to the file as a line ('wrote', or
 * 'error CODE'), and 'close' closes the file ('closed') and ends the child.
 */
export function heldWriter(t: Test, path: string): LineChild {
  return lineChild(t, `
    const fs = require('fs'), rl = require('readline');
    const fd = fs.openSync(process.argv[1], 'a');
    console.log('open');
    rl.createInterface({ input: process.stdin }).on('line', (l) => {
      try {
        if (l === 'close') { fs.closeSync(fd); console.log('closed'); process.exit(0); }
        fs.writeSync(fd, l + '\\n'); console.log('wrote');
      } catch (e) { console.log('error ' + (e.code || e.message)); }
    });`, [path]);
}

/** Poll df until pred holds or the time is up; returns the last reading. */
export async function dfUntil(path: string, pred: (d: ReturnType<typeof df>) => boolean, ms = 5000): Promise<ReturnType<typeof df>> {
  const end = Date.now() + ms;
  let d = df(path);
  while (!pred(d) && Date.now() < end) {
    await sleep(100);
    d = df(path);
  }
  return d;
}
