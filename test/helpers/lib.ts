/**
 * For the library's tests (test/lib-*.test.ts): a mount with page tables on,
 * files laid out aligned or fragmented in the pool, and what /proc says
 * about this process's memory (smaps flags, minor faults).
 */
import fs from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setKnob } from './control.js';
import { freshMount, sh, type Mounted } from './mount.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const PAGE = 4096;

/** A fresh mount with `page_tables_on` 1. */
export async function tablesMount(t: Test, size = '512M', opts: string[] = []): Promise<Mounted & { dir: string }> {
  const m = await freshMount(t, { size, mount: { opts } });
  setKnob(m.mnt, 'page_tables_on', 1);
  return m;
}

/** Deterministic bytes. */
export function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = (seed * 2654435761) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A file written whole with dd bs=1M: 2 MiB-aligned in the pool (huge PMD entries). */
export function alignedFile(mnt: string, name: string, bytes: number, seed = 1): { path: string; data: Buffer } {
  const path = join(mnt, name);
  const data = pattern(bytes, seed);
  fs.writeFileSync(path, data);
  return { path, data };
}

/**
 * Two files written in alternating chunks through two open handles, so each
 * one's blocks alternate with the other's in the pool: `name` is returned,
 * fragmented in runs of `chunk` bytes (files under 2 MiB: PTE entries; above,
 * each 2 MiB its own aligned region, taken whole).
 */
export function fragmentedFile(mnt: string, name: string, bytes: number, chunk: number, seed = 2): { path: string; data: Buffer } {
  const path = join(mnt, name);
  const other = join(mnt, `${name}.other`);
  const data = pattern(bytes, seed);
  const fa = fs.openSync(path, 'w');
  const fb = fs.openSync(other, 'w');
  try {
    for (let off = 0; off < bytes; off += chunk) {
      fs.writeSync(fa, data, off, Math.min(chunk, bytes - off), off);
      fs.writeSync(fb, data, off, Math.min(chunk, bytes - off), off);
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
  return { path, data };
}

/** `cat FILE` through the mount (another process, its own open). */
export function catBytes(path: string): Buffer {
  const r = sh(`cat '${path}' | base64 -w0`);
  if (r.status !== 0) throw new Error(r.summary);
  return Buffer.from(r.stdout, 'base64');
}

/** The /proc/self/smaps entry holding `address`: its header and fields (kB), and VmFlags. */
export function smapsAt(address: number): { range: [number, number]; fields: Record<string, number>; flags: string[] } | undefined {
  const text = fs.readFileSync('/proc/self/smaps', 'utf8');
  let cur: { range: [number, number]; fields: Record<string, number>; flags: string[] } | undefined;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (head) {
      if (cur && address >= cur.range[0] && address < cur.range[1]) return cur;
      cur = { range: [parseInt(head[1]!, 16), parseInt(head[2]!, 16)], fields: {}, flags: [] };
      continue;
    }
    if (!cur) continue;
    const f = /^(\w+):\s+(\d+) kB/.exec(line);
    if (f) cur.fields[f[1]!] = Number(f[2]);
    else if (line.startsWith('VmFlags:')) cur.flags = line.slice(8).trim().split(/\s+/);
  }
  return cur && address >= cur.range[0] && address < cur.range[1] ? cur : undefined;
}

/** Minor page faults of this process so far. */
export function minorFaults(): number {
  return process.resourceUsage().minorPageFault;
}

/** Run the GC a few times (exposed at run time: tests do not get --expose-gc). */
export async function collect(): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
}
