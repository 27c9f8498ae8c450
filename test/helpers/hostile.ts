/**
 * Helpers for the hostile-input tests through the mount (mount-names,
 * mount-deep, mount-sparse): raw-byte names for Node and bash, tools run
 * with their output kept as bytes, and the check that the daemon survived.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Test } from 'tap';
import type { Mounted } from './mount.js';

/** Bytes of strings (UTF-8) and byte arrays, joined. */
export function bytes(...parts: Array<string | number[] | Buffer>): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
}

/** dir/name as a Buffer path (Node's fs takes Buffer paths as raw bytes). */
export function under(dir: string | Buffer, ...names: Buffer[]): Buffer {
  const out: Buffer[] = [typeof dir === 'string' ? Buffer.from(dir) : dir];
  for (const n of names) out.push(Buffer.from('/'), n);
  return Buffer.concat(out);
}

/** A bash word for raw bytes: $'\xNN...' (every byte escaped; no NUL). */
export function bashWord(b: Buffer): string {
  return `$'${[...b].map((c) => `\\x${c.toString(16).padStart(2, '0')}`).join('')}'`;
}

/** The names in a directory as hex strings, sorted (exact bytes, nothing decoded). */
export function listHex(dir: string | Buffer): string[] {
  return fs.readdirSync(dir, { encoding: 'buffer' }).map((n) => n.toString('hex')).sort();
}

export interface BytesResult {
  status: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Run a program (no shell, or bash -c with `set -e -o pipefail`), stdout kept as bytes. */
export function runBytes(cmd: string, args: string[], timeoutMs = 120_000): BytesResult {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, timeout: timeoutMs });
  return { status: r.status, stdout: r.stdout ?? Buffer.alloc(0), stderr: String(r.stderr ?? '') + (r.error ? `\n[${r.error.message}]` : '') };
}

export function bashBytes(script: string, timeoutMs?: number): BytesResult {
  return runBytes('bash', ['-c', `set -e -o pipefail\n${script}`], timeoutMs);
}

/** NUL-separated output (find -print0, ls --zero) split into its records. */
export function splitNul(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (let i = b.indexOf(0); i >= 0; i = b.indexOf(0, from)) {
    out.push(b.subarray(from, i));
    from = i + 1;
  }
  return out;
}

/** What the daemon's log must never hold: an error it did not expect, or a crash. */
const CRASH = /unexpected error|Uncaught|TypeError|RangeError|Maximum call stack|FATAL|Segmentation/;

/** The daemon is still running, still answers (statfs through the mount) and logged nothing unexpected. */
export function checkDaemon(t: Test, m: Mounted, when: string): void {
  t.equal(m.child.exitCode ?? m.child.signalCode ?? 'running', 'running', `daemon still running ${when}`);
  let blocks = 0;
  try {
    blocks = fs.statfsSync(m.mnt).blocks;
  } catch (err) {
    t.fail(`statfs of the mount ${when}: ${(err as Error).message}`);
  }
  t.ok(blocks > 0, `the mount still answers ${when}`);
  const log = m.log();
  t.notOk(CRASH.test(log), `nothing unexpected in the daemon's log ${when}`, { log: log.slice(-3000) });
}
