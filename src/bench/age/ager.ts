/**
 * Geriatrix-style aging through the mount, with ordinary syscalls: fill a
 * directory with files drawn from the profile up to the target fill level,
 * then keep deleting random files and creating new ones so the fill stays at
 * the target, until the bytes written reach churn × capacity.
 *
 * Every decision comes from the seeded PRNG and a model of the space our
 * files take (their sizes in whole 4 KiB blocks, plus a block per directory),
 * never from statfs, whose free count moves with the daemon's commits: the
 * same seed gives the same operations. Only ENOSPC (the file system is fuller
 * than the model says: metadata, other writers) changes the course: the
 * target is lowered below what we hold and more files are deleted.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { drawDir, drawSize, PROFILE_MAX_BYTES } from './profile.js';
import { fileName, Pattern } from './pattern.js';
import { snapshot, statfsUsage, type Snapshot } from './snapshot.js';
import { writeMarker, MARKER, type AgeParams } from './tree.js';

const BLOCK = 4096;
/** Largest file, as a share of the space the aged files get (a small pool still gets many files). */
const MAX_FILE_SHARE = 1 / 8;

export interface AgeOptions {
  /** Absolute path of the daxvm mount. */
  mnt: string;
  /** Its pool file (for the fragmentation report). */
  pool: string;
  /** Absolute path of the aging root, inside mnt; must not exist or be empty. */
  dir: string;
  /** Target fill level, 0.01 to 0.95 of the capacity. */
  fill: number;
  /** Bytes to write, as a multiple of the capacity. */
  churn: number;
  seed: number;
  /** Largest file in bytes (default: the profile's, at most 1/8 of the space to fill). */
  maxFile?: number;
  onProgress?: (written: number, goal: number) => void;
  /** Stop early (Ctrl-C): the result and the marker say 'interrupted'. */
  signal?: AbortSignal;
}

export interface AgeResult {
  status: 'done' | 'interrupted';
  mountpoint: string;
  pool: string;
  dir: string;
  marker: string;
  params: AgeParams;
  before: Snapshot;
  after: Snapshot;
  /** Aged files left, their bytes, directories made. */
  files: number;
  fileBytes: number;
  directories: number;
  bytesWritten: number;
  creates: number;
  deletes: number;
  operations: number;
  /** Times ENOSPC made us delete more than the model asked. */
  enospcBackoffs: number;
  seconds: number;
  /** Seconds until the target fill was first reached. */
  fillSeconds: number | null;
  /** SHA-256 of the operations in order: equal for equal seeds (when no ENOSPC intervened). */
  sequenceDigest: string;
}

export class AgeError extends Error {
  override readonly name = 'AgeError';
  constructor(message: string, readonly hint?: string) {
    super(message);
  }
}

interface Live {
  rel: string;
  cost: number;
  size: number;
}

const cost = (size: number): number => Math.max(1, Math.ceil(size / BLOCK)) * BLOCK;

function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export async function age(o: AgeOptions): Promise<AgeResult> {
  const t0 = performance.now();
  const rng = xoroshiro128plus(o.seed);
  const pattern = new Pattern(o.seed);
  const digest = createHash('sha256');
  const marker = join(o.dir, MARKER);

  mkdirSync(o.dir, { recursive: true });
  const { capacityBytes, usedBytes: baseline } = statfsUsage(o.mnt);
  let budget = Math.floor(o.fill * capacityBytes) - baseline;
  if (budget < 16 * BLOCK) {
    throw new AgeError(
      `${o.mnt} is already ${((100 * baseline) / capacityBytes).toFixed(1)}% full, at or above the --fill of ${(100 * o.fill).toFixed(0)}%`,
      'give a higher --fill, or free space on the mount',
    );
  }
  const maxFile = Math.max(1, Math.min(o.maxFile ?? PROFILE_MAX_BYTES, Math.floor(budget * MAX_FILE_SHARE)));
  const params: AgeParams = { fill: o.fill, churn: o.churn, seed: o.seed, maxFileBytes: maxFile };
  const started = new Date().toISOString();
  writeMarker(marker, { status: 'running', params, started }); // and commit: info reads the pool as of the last commit
  const before = snapshot(o.mnt, o.pool);

  const goal = o.churn * capacityBytes;
  const live: Live[] = [];
  const dirs = new Set<string>(['']);
  let used = 0;
  let written = 0;
  let creates = 0;
  let deletes = 0;
  let mkdirs = 0;
  let enospc = 0;
  let serial = 0;
  let fillSeconds: number | null = null;
  let lastYield = performance.now();

  const deleteOne = (): void => {
    const i = uniformInt(rng, 0, live.length - 1);
    const victim = live[i];
    const last = live.pop();
    if (!victim || !last) throw new Error('age: nothing left to delete');
    if (i < live.length) live[i] = last;
    unlinkSync(join(o.dir, victim.rel));
    used -= victim.cost;
    deletes++;
    digest.update(`d ${victim.rel}\n`);
  };
  const makeRoom = (need: number): void => {
    if (fillSeconds === null && used + need > budget) fillSeconds = (performance.now() - t0) / 1000;
    while (used + need > budget && live.length > 0) deleteOne();
  };
  const ensureDir = (rel: string): void => {
    if (dirs.has(rel)) return;
    const slash = rel.lastIndexOf('/');
    if (slash > 0) ensureDir(rel.slice(0, slash));
    mkdirSync(join(o.dir, rel));
    dirs.add(rel);
    used += BLOCK;
    mkdirs++;
    digest.update(`m ${rel}\n`);
  };
  /** ENOSPC: the file system holds less than the model thinks; aim lower and make room for real. */
  const backOff = (need: number, what: string): void => {
    enospc++;
    if (live.length === 0) {
      throw new AgeError(
        `no space on ${o.mnt} for ${what} even with no aged file left (${statfsUsage(o.mnt).usedBytes} of ${capacityBytes} bytes in use)`,
        'free space on the mount, or give a lower --fill',
      );
    }
    budget = Math.min(budget, used) - Math.max(need, Math.floor(capacityBytes / 100));
    makeRoom(need);
    writeMarker(marker, { status: 'running', params, started }); // a commit: the blocks just freed become usable
  };

  /** Create file number `serial` in `dirRel`; ENOSPC is thrown with nothing left behind. */
  const create = (dirRel: string, size: number): void => {
    const name = fileName(serial, size);
    const rel = dirRel ? `${dirRel}/${name}` : name;
    try {
      ensureDir(dirRel);
      pattern.write(join(o.dir, rel), rel, size);
    } catch (err) {
      if (isNoSpace(err)) {
        try {
          unlinkSync(join(o.dir, rel));
        } catch { /* not created */ }
      }
      throw err;
    }
    live.push({ rel, cost: cost(size), size });
    used += cost(size);
    written += size;
    creates++;
    digest.update(`c ${rel}\n`);
  };

  while (written < goal && !o.signal?.aborted) {
    serial++;
    const dirRel = drawDir(rng);
    const size = drawSize(rng, maxFile);
    makeRoom(cost(size));
    for (;;) {
      try {
        create(dirRel, size);
        break;
      } catch (err) {
        if (!isNoSpace(err)) throw err;
        backOff(cost(size), `a file of ${size} bytes`);
      }
    }
    if (performance.now() - lastYield > 100) {
      o.onProgress?.(written, goal);
      await new Promise((r) => setImmediate(r)); // lets Ctrl-C and the progress bar in
      lastYield = performance.now();
    }
  }
  // Top up: the last deletions may have left the fill well under the target (by up to one large file).
  for (let misses = 0; misses < 8 && !o.signal?.aborted;) {
    serial++;
    const dirRel = drawDir(rng);
    const size = drawSize(rng, maxFile);
    if (used + cost(size) > budget) {
      misses++;
      continue;
    }
    try {
      create(dirRel, size);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      break;
    }
  }
  o.onProgress?.(Math.min(written, goal), goal);

  writeMarker(marker, { status: 'running', params, started });
  const after = snapshot(o.mnt, o.pool);
  const result: AgeResult = {
    status: o.signal?.aborted ? 'interrupted' : 'done',
    mountpoint: o.mnt,
    pool: o.pool,
    dir: o.dir,
    marker,
    params,
    before,
    after,
    files: live.length,
    fileBytes: live.reduce((n, f) => n + f.size, 0),
    directories: dirs.size - 1,
    bytesWritten: written,
    creates,
    deletes,
    operations: creates + deletes + mkdirs,
    enospcBackoffs: enospc,
    seconds: Math.round((performance.now() - t0) / 10) / 100,
    fillSeconds: fillSeconds === null ? null : Math.round(fillSeconds * 100) / 100,
    sequenceDigest: digest.digest('hex'),
  };
  writeMarker(marker, { status: result.status, params, started, finished: new Date().toISOString(), result });
  return result;
}
