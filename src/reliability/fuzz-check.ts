/**
 * What a damaged pool image must survive (one fuzz case):
 *
 *  1. fsck (read-only) returns a report: it never throws.
 *  2. open either refuses with a PoolError or serves a file system that can
 *     be walked whole (readdir, getattr, readlink, every xattr, every byte of
 *     every file) with nothing thrown but FsError, and unmounted.
 *  3. fsck --repair of the damaged image returns a report, exit 0 or 1
 *     (4: it left problems; 8: it gave up, accepted only where no repair can
 *     exist: a valid superblock of a newer format).
 *  4. the repaired pool opens, walks with no error at all, unmounts, and a
 *     second fsck finds it clean (exit 0).
 *
 * Anything else thrown (RangeError, TypeError, Error...) is a crash; a case
 * that does not finish within its time limit is a hang (the runner kills it).
 */
import { fsck, FsError, openFileSystem, PoolError, ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, type FileSystem, type FsckReport } from '../fs/index.js';
import { Pool } from '../media/pool.js';
import { closeQuietly, type WorkImage } from './image.js';
import type { FuzzCase } from './damage.js';

export interface CaseOutcome {
  index: number;
  failure: string | null;
  fsckExit: number;
  open: 'refused' | 'served';
  repairExit: number;
  /** FsErrors met while walking the damaged pool. */
  fsErrors: number;
}

/** Bounds of a walk (a damaged size can claim terabytes). */
const MAX_READ_BYTES = 256 << 20;
const MAX_ENTRIES = 100000;

class Unexpected extends Error {}

/** Run `fn`; FsError is counted (or, when `strict`, a failure); anything else is a crash. */
function guard<T>(what: string, strict: boolean, counter: { fsErrors: number; first: string }, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FsError && !strict) {
      counter.fsErrors++;
      return undefined;
    }
    if (err instanceof FsError) {
      if (!counter.first) counter.first = `${what}: ${err.message}`;
      counter.fsErrors++;
      return undefined;
    }
    throw new Unexpected(`${what} threw ${describe(err)}`);
  }
}

/** Walk everything; returns the FsErrors met (strict: the first one is kept as a failure). */
export function walkEverything(fsys: FileSystem, strict: boolean): { fsErrors: number; first: string } {
  const counter = { fsErrors: 0, first: '' };
  const seen = new Set<number>();
  const queue: Array<[string, number]> = [['/', ROOT_INO]];
  let entries = 0;
  let readBudget = MAX_READ_BYTES;
  const buf = Buffer.alloc(1 << 20);
  guard('statfs', strict, counter, () => fsys.statfs());
  while (queue.length && entries < MAX_ENTRIES) {
    const [path, ino] = queue.shift()!;
    if (seen.has(ino)) continue;
    seen.add(ino);
    const a = guard(`getattr ${path}`, strict, counter, () => fsys.getattr(ino));
    if (!a) continue;
    const type = a.mode & S_IFMT;
    if (type === S_IFREG || type === S_IFDIR) {
      const names = guard(`listxattr ${path}`, strict, counter, () => fsys.listxattr(ino)) ?? [];
      for (const n of names) guard(`getxattr ${path} ${n}`, strict, counter, () => fsys.getxattr(ino, n));
    }
    if (type === S_IFLNK) guard(`readlink ${path}`, strict, counter, () => fsys.readlink(ino));
    if (type === S_IFREG) {
      // Every byte up to the budget, then the last megabyte of a file larger than that.
      const size = a.size;
      const spans: Array<[number, number]> = [[0, Math.min(size, readBudget)]];
      if (size > readBudget) spans.push([Math.max(0, size - buf.length), size]);
      for (const [from, to] of spans) {
        for (let pos = from; pos < to;) {
          const n = guard(`read ${path} at ${pos}`, strict, counter, () => fsys.read(ino, pos, buf.subarray(0, Math.min(buf.length, to - pos))));
          if (!n) break;
          pos += n;
          readBudget -= n;
        }
      }
    }
    if (type === S_IFDIR) {
      const list = guard(`readdir ${path}`, strict, counter, () => fsys.readdir(ino)) ?? [];
      for (const e of list) {
        if (e.name === '.' || e.name === '..') continue;
        entries++;
        const child = guard(`lookup ${path}/${e.name}`, strict, counter, () => fsys.lookup(ino, e.name));
        if (child !== undefined) queue.push([path === '/' ? `/${e.name}` : `${path}/${e.name}`, child]);
      }
    }
  }
  return counter;
}

/** Check one damaged image; the working file is restored afterwards. */
export function checkCase(img: WorkImage, c: FuzzCase): CaseOutcome {
  const out: CaseOutcome = { index: c.index, failure: null, fsckExit: -1, open: 'refused', repairExit: -1, fsErrors: 0 };
  const apply = (): void => {
    img.restore([0, 1]);
    for (const [p, bytes] of c.pages) img.writePage(p, bytes);
  };
  Pool.setDefaultRecorder(img);
  try {
    apply();
    checkDamaged(img, out);
    // 3. fsck --repair of the damaged image as it was.
    apply();
    let repaired: FsckReport;
    try {
      repaired = fsck(img.path, { repair: true });
    } catch (err) {
      throw new Unexpected(`fsck --repair threw ${describe(err)}`);
    }
    out.repairExit = repaired.exitCode;
    if (repaired.exitCode === 8) {
      // Refusals no repair can get past: a valid superblock of a newer format, or both superblocks damaged.
      if (/newer pool format/.test(repaired.error ?? '')) return out;
      const hit = new Set(c.mutations.map((m) => m.structure.kind));
      if (/both superblocks are corrupt/.test(repaired.error ?? '') && hit.has('superblock') && hit.has('backup-superblock')) return out;
      out.failure = `fsck --repair gave up (exit 8): ${firstLine(repaired.error)}`;
      return out;
    }
    if (repaired.exitCode === 4) {
      out.failure = `fsck --repair left problems (exit 4): ${repaired.problems.filter((p) => !p.fixed).map((p) => `${p.kind}: ${p.message}`).slice(0, 3).join('; ')}`;
      return out;
    }
    out.failure = checkRepaired(img);
    return out;
  } catch (err) {
    out.failure = err instanceof Unexpected ? err.message : `the checker itself threw ${describe(err)}`;
    return out;
  } finally {
    Pool.setDefaultRecorder(null);
    img.restore([0, 1]);
  }
}

/** 1. fsck, read-only; 2. the damaged pool is refused with advice, or served and walked without a crash. */
function checkDamaged(img: WorkImage, out: CaseOutcome): void {
  let report: FsckReport;
  try {
    report = fsck(img.path);
  } catch (err) {
    throw new Unexpected(`fsck threw ${describe(err)}`);
  }
  out.fsckExit = report.exitCode;
  let fsys: FileSystem | null = null;
  try {
    fsys = openFileSystem(img.path, { commitIntervalMs: 0 });
  } catch (err) {
    if (!(err instanceof PoolError && err.hint !== undefined)) throw new Unexpected(`open threw ${describe(err)} (a damaged pool is refused with a PoolError that says what to do)`);
  }
  if (!fsys) return;
  out.open = 'served';
  try {
    out.fsErrors = walkEverything(fsys, false).fsErrors;
    try {
      fsys.close();
    } catch (err) {
      if (!(err instanceof FsError || (err instanceof PoolError && err.hint !== undefined))) throw new Unexpected(`unmount threw ${describe(err)}`);
    }
  } finally {
    closeQuietly(fsys);
  }
}

/** 4. The repaired pool opens, walks cleanly, and fsck finds it clean: null, else what fails. */
function checkRepaired(img: WorkImage): string | null {
  let again: FileSystem;
  try {
    again = openFileSystem(img.path, { commitIntervalMs: 0 });
  } catch (err) {
    return `the repaired pool does not open: ${describe(err)}`;
  }
  try {
    const walk = walkEverything(again, true);
    if (walk.fsErrors) return `the repaired pool still fails: ${walk.first}${walk.fsErrors > 1 ? ` (and ${walk.fsErrors - 1} more)` : ''}`;
    again.close();
  } finally {
    closeQuietly(again);
  }
  const second = fsck(img.path);
  if (second.exitCode !== 0) {
    return `a second fsck after --repair exits ${second.exitCode}: ${second.error ?? second.problems.map((p) => `${p.kind}: ${p.message}`).slice(0, 3).join('; ')}`;
  }
  return null;
}

function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n')[0] ?? '';
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const kind = err instanceof PoolError && err.hint === undefined ? 'PoolError(media)' : err.constructor?.name ?? 'Error';
    const where = err.stack?.split('\n').slice(1, 4).map((l) => l.trim().replace(/^at /, '')).join(' < ') ?? '';
    return `${kind}: ${err.message}${where ? ` [${where}]` : ''}`;
  }
  return String(err);
}
