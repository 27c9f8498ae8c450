/**
 * The `.daxvm/` control files and `user.daxvm.ppt`, through real tools (cat,
 * echo in a shell, getfattr), for the mount tests.
 */
import { join } from 'node:path';
import { run, sh, type RunResult } from './mount.js';

export const ctlDir = (mnt: string): string => join(mnt, '.daxvm');

/** `cat FILE`; throws with the command's summary if it fails. */
export function cat(path: string): string {
  const r = run('cat', [path]);
  if (r.status !== 0) throw new Error(r.summary);
  return r.stdout;
}

/** `echo VALUE > FILE` in a shell, as a user would. */
export function echoTo(path: string, value: string): RunResult {
  return sh(`echo ${value} > '${path}'`);
}

/** Set a knob; throws if the shell reports an error. */
export function setKnob(mnt: string, name: string, value: number | string): void {
  const r = echoTo(join(ctlDir(mnt), name), String(value));
  if (r.status !== 0) throw new Error(r.summary);
}

export function knob(mnt: string, name: string): string {
  return cat(join(ctlDir(mnt), name));
}

/** `kbytes_occupied`, parsed; throws if it is not exactly two lines `PMEM: N` and `DRAM: N`. */
export function occupied(mnt: string): { pmem: number; dram: number } {
  const text = cat(join(ctlDir(mnt), 'kbytes_occupied'));
  const m = /^PMEM: (\d+)\nDRAM: (\d+)\n$/.exec(text);
  if (!m) throw new Error(`kbytes_occupied: unexpected content ${JSON.stringify(text)}`);
  return { pmem: Number(m[1]), dram: Number(m[2]) };
}

export function stats(mnt: string): Record<string, number> {
  return JSON.parse(cat(join(ctlDir(mnt), 'stats'))) as Record<string, number>;
}

export interface Ppt {
  ino: number;
  gen: number;
  seq: number;
  root: number;
  level: number;
  nodes: number;
  size: number;
}

/** `getfattr --only-values -n user.daxvm.ppt FILE`, parsed; throws on failure or a malformed value. */
export function ppt(path: string): Ppt {
  const r = run('getfattr', ['--only-values', '--absolute-names', '-n', 'user.daxvm.ppt', path]);
  if (r.status !== 0) throw new Error(r.summary);
  const m = /^ino=(\d+) gen=(\d+) seq=(\d+) root=(\d+) level=(\d+) nodes=(\d+) size=(\d+)$/.exec(r.stdout);
  if (!m) throw new Error(`user.daxvm.ppt of ${path}: unexpected value ${JSON.stringify(r.stdout)}`);
  const [ino, gen, seq, root, level, nodes, size] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return { ino, gen, seq, root, level, nodes, size };
}
