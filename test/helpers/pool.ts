/** Temp pools for tests of the fs layer (no mount). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { FileSystem, mkfs, openFileSystem, type OpenOptions } from '../../src/fs/index.js';

export const ROOT = { uid: 0, gid: 0 };

export function tempPool(t: Test, sizeMiB = 64, name = 'test.pool'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'daxvm-fs-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pool = path.join(dir, name);
  mkfs(pool, { size: sizeMiB * 1024 * 1024 });
  return pool;
}

/** Open, and close at teardown unless the test closed it. */
export function openPool(t: Test, pool: string, opts: OpenOptions = {}): FileSystem {
  const fsys = openFileSystem(pool, { commitIntervalMs: 0, ...opts });
  t.teardown(() => {
    try {
      fsys.close();
    } catch {
      // already closed
    }
  });
  return fsys;
}

/**
 * What a SIGKILL of the daemon leaves: the pool file as it is now, with
 * every store made so far and no clean unmount. Returns the copy's path.
 */
export function crashCopy(t: Test, pool: string): string {
  const copy = `${pool}.crash${Math.random().toString(36).slice(2, 8)}`;
  fs.copyFileSync(pool, copy);
  t.teardown(() => fs.rmSync(copy, { force: true }));
  return copy;
}

export function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export function readAll(fsys: FileSystem, ino: number): Buffer {
  const size = fsys.getattr(ino).size;
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = fsys.read(ino, done, buf.subarray(done, Math.min(size, done + (1 << 20))));
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}
