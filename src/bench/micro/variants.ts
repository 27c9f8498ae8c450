/**
 * The variants of the read-style benches (read, mt) and the pass each one
 * makes over a set of files: for every file, open, get its bytes into the
 * process (read(), or a mapping by the library), sum them in 8-byte words
 * (native sum64, the same cost on every variant), unmap, close.
 * Used on the main thread (read) and in worker threads (mt).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { flushBatched, mmap, MAP_DAXVM, MAP_DAXVM_BATCHING, MAP_DAXVM_EPHEMERAL } from '../../lib/index.js';
import { native } from '../native.js';
import { addSum } from './files.js';
import type { VariantDef } from './types.js';

export type FileOp =
  | { kind: 'read' }
  | { kind: 'map'; flags: number; populate?: boolean; fromPool: boolean };

export interface FileVariant extends VariantDef {
  op: FileOp;
}

const variant = (v: FileVariant): FileVariant => v;

export const FILE_VARIANTS = {
  read: variant({ name: 'read', description: 'open, read() the whole file into a reused buffer, sum, close', op: { kind: 'read' } }),
  mmap: variant({ name: 'mmap', description: "mmap(path) without MAP_DAXVM: the library's vanilla path, a plain mmap through the mount; sum, unmap",
    op: { kind: 'map', flags: 0, fromPool: false } }),
  populate: variant({ name: 'populate', description: 'the same with MAP_POPULATE (mmap(path, { populate: true }))',
    op: { kind: 'map', flags: 0, populate: true, fromPool: false } }),
  daxvm: variant({ name: 'daxvm', description: 'mmap(path, { flags: MAP_DAXVM }): straight out of the pool by the persistent page tables',
    needsTables: true, op: { kind: 'map', flags: MAP_DAXVM, fromPool: true } }),
  'daxvm-ephemeral': variant({ name: 'daxvm-ephemeral', description: 'MAP_DAXVM_EPHEMERAL: stitched spans from the per-process ephemeral heap',
    needsTables: true, op: { kind: 'map', flags: MAP_DAXVM_EPHEMERAL, fromPool: true } }),
  'daxvm-batching': variant({ name: 'daxvm-batching', description: 'MAP_DAXVM | MAP_DAXVM_BATCHING: unmaps of stitched spans batched by zombie_max_pages',
    needsTables: true, op: { kind: 'map', flags: MAP_DAXVM | MAP_DAXVM_BATCHING, fromPool: true } }),
  native: variant({ name: 'native', description: 'read() of the same files in a directory of the host (--native): the ceiling here',
    native: true, op: { kind: 'read' } }),
  'native-mmap': variant({ name: 'native-mmap', description: 'a plain mmap of the same files in the host directory; sum, unmap',
    native: true, op: { kind: 'map', flags: 0, fromPool: false } }),
} as const;

export type FileVariantName = keyof typeof FILE_VARIANTS;

export interface PassOut {
  bytes: number;
  ops: number;
  sum: bigint;
  modes: Record<string, number>;
  /** A MAP_DAXVM variant fell back to the vanilla path: why (the pass stopped there). */
  fallback?: string;
}

/** Reads a whole file into buf (which holds at least `size` bytes); returns the bytes read. */
function readAll(path: string, buf: Buffer, size: number): number {
  const fd = openSync(path, 'r');
  try {
    let got = 0;
    for (;;) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
      if (got === size) {
        // One more read to be sure the file holds no more than we think.
        if (readSync(fd, buf, 0, 1, got) !== 0) throw new Error(`${path} is longer than ${size} bytes`);
        break;
      }
    }
    return got;
  } finally {
    closeSync(fd);
  }
}

/** One pass of `op` over the files; `buf` (read only) must hold a whole file. */
export function passOverFiles(op: FileOp, paths: readonly string[], size: number, buf?: Buffer): PassOut {
  let sum = 0n;
  let bytes = 0;
  const modes: Record<string, number> = {};
  if (op.kind === 'read') {
    if (!buf || buf.length < size) throw new Error('read needs a buffer of the file size');
    for (const p of paths) {
      const n = readAll(p, buf, size);
      sum = addSum(sum, native.sum64(buf, n));
      bytes += n;
    }
    return { bytes, ops: paths.length, sum, modes };
  }
  const options = op.populate ? { flags: op.flags, populate: true } : { flags: op.flags }; // one object for the pass, not one per file
  for (let i = 0; i < paths.length; i++) {
    const m = mmap(paths[i]!, options);
    try {
      if (op.fromPool && m.mode === 'vanilla') {
        return { bytes, ops: i, sum, modes, fallback: `MAP_DAXVM fell back to the vanilla path: ${m.fallbackReason ?? 'no reason given'}` };
      }
      sum = addSum(sum, native.sum64(m.buffer));
      bytes += m.length;
      modes[m.mode] = (modes[m.mode] ?? 0) + 1;
    } finally {
      m.unmap();
    }
  }
  return { bytes, ops: paths.length, sum, modes };
}

/** After the clock stopped: drop batched spans still queued, so one pass does not leave work to the next. */
export function settle(op: FileOp): void {
  if (op.kind === 'map' && op.flags & MAP_DAXVM_BATCHING) flushBatched();
}
