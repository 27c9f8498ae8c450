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

type RandomGenerator = ReturnType<typeof xoroshiro128plus>;

/**
 * The aged tree as the model sees it (our files, our directories, the space
 * they take against the budget), and the operations on it, each fed to the
 * sequence digest.
 */
class AgedTree {
  readonly live: Live[] = [];
  readonly dirs = new Set<string>(['']);
  used = 0;
  written = 0;
  creates = 0;
  deletes = 0;
  mkdirs = 0;
  enospc = 0;
  /** Seconds until the budget was first reached. */
  fillSeconds: number | null = null;
  private readonly pattern: Pattern;
  private readonly digest = createHash('sha256');

  constructor(
    private readonly o: AgeOptions,
    private readonly rng: RandomGenerator,
    private budget: number,
    private readonly capacityBytes: number,
    private readonly t0: number,
    /** A commit, so that blocks just freed become usable. */
    private readonly commit: () => void,
  ) {
    this.pattern = new Pattern(o.seed);
  }

  get room(): number {
    return this.budget - this.used;
  }

  sequenceDigest(): string {
    return this.digest.digest('hex');
  }

  private deleteOne(): void {
    const i = uniformInt(this.rng, 0, this.live.length - 1);
    const victim = this.live[i];
    const last = this.live.pop();
    if (!victim || !last) throw new Error('age: nothing left to delete');
    if (i < this.live.length) this.live[i] = last;
    unlinkSync(join(this.o.dir, victim.rel));
    this.used -= victim.cost;
    this.deletes++;
    this.digest.update(`d ${victim.rel}\n`);
  }

  makeRoom(need: number): void {
    if (this.fillSeconds === null && this.used + need > this.budget) this.fillSeconds = (performance.now() - this.t0) / 1000;
    while (this.used + need > this.budget && this.live.length > 0) this.deleteOne();
  }

  private ensureDir(rel: string): void {
    if (this.dirs.has(rel)) return;
    const slash = rel.lastIndexOf('/');
    if (slash > 0) this.ensureDir(rel.slice(0, slash));
    mkdirSync(join(this.o.dir, rel));
    this.dirs.add(rel);
    this.used += BLOCK;
    this.mkdirs++;
    this.digest.update(`m ${rel}\n`);
  }

  /** ENOSPC: the file system holds less than the model thinks; aim lower and make room for real. */
  backOff(need: number, what: string): void {
    this.enospc++;
    if (this.live.length === 0) {
      throw new AgeError(
        `no space on ${this.o.mnt} for ${what} even with no aged file left (${statfsUsage(this.o.mnt).usedBytes} of ${this.capacityBytes} bytes in use)`,
        'free space on the mount, or give a lower --fill',
      );
    }
    this.budget = Math.min(this.budget, this.used) - Math.max(need, Math.floor(this.capacityBytes / 100));
    this.makeRoom(need);
    this.commit();
  }

  /** Create file number `serial` in `dirRel`; ENOSPC is thrown with nothing left behind. */
  create(serial: number, dirRel: string, size: number): void {
    const name = fileName(serial, size);
    const rel = dirRel ? `${dirRel}/${name}` : name;
    try {
      this.ensureDir(dirRel);
      this.pattern.write(join(this.o.dir, rel), rel, size);
    } catch (err) {
      if (isNoSpace(err)) {
        try {
          unlinkSync(join(this.o.dir, rel));
        } catch { /* not created */ }
      }
      throw err;
    }
    this.live.push({ rel, cost: cost(size), size });
    this.used += cost(size);
    this.written += size;
    this.creates++;
    this.digest.update(`c ${rel}\n`);
  }
}

/** Churn: create files (deleting at random to stay within the budget) until `goal` bytes are written. */
async function churn(tree: AgedTree, o: AgeOptions, rng: RandomGenerator, maxFile: number, goal: number, next: () => number): Promise<void> {
  let lastYield = performance.now();
  while (tree.written < goal && !o.signal?.aborted) {
    const serial = next();
    const dirRel = drawDir(rng);
    const size = drawSize(rng, maxFile);
    tree.makeRoom(cost(size));
    for (;;) {
      try {
        tree.create(serial, dirRel, size);
        break;
      } catch (err) {
        if (!isNoSpace(err)) throw err;
        tree.backOff(cost(size), `a file of ${size} bytes`);
      }
    }
    if (performance.now() - lastYield > 100) {
      o.onProgress?.(tree.written, goal);
      await new Promise((r) => setImmediate(r)); // lets Ctrl-C and the progress bar in
      lastYield = performance.now();
    }
  }
}

/** Top up: the last deletions may have left the fill well under the target (by up to one large file). */
function topUp(tree: AgedTree, o: AgeOptions, rng: RandomGenerator, maxFile: number, next: () => number): void {
  for (let misses = 0; misses < 8 && !o.signal?.aborted;) {
    const serial = next();
    const dirRel = drawDir(rng);
    const size = drawSize(rng, maxFile);
    if (cost(size) > tree.room) {
      misses++;
      continue;
    }
    try {
      tree.create(serial, dirRel, size);
    } catch (err) {
      if (!isNoSpace(err)) throw err;
      break;
    }
  }
}

export async function age(o: AgeOptions): Promise<AgeResult> {
  const t0 = performance.now();
  const rng = xoroshiro128plus(o.seed);
  const marker = join(o.dir, MARKER);

  mkdirSync(o.dir, { recursive: true });
  const { capacityBytes, usedBytes: baseline } = statfsUsage(o.mnt);
  const budget = Math.floor(o.fill * capacityBytes) - baseline;
  if (budget < 16 * BLOCK) {
    throw new AgeError(
      `${o.mnt} is already ${((100 * baseline) / capacityBytes).toFixed(1)}% full, at or above the --fill of ${(100 * o.fill).toFixed(0)}%`,
      'give a higher --fill, or free space on the mount',
    );
  }
  const maxFile = Math.max(1, Math.min(o.maxFile ?? PROFILE_MAX_BYTES, Math.floor(budget * MAX_FILE_SHARE)));
  const params: AgeParams = { fill: o.fill, churn: o.churn, seed: o.seed, maxFileBytes: maxFile };
  const started = new Date().toISOString();
  const running = (): void => writeMarker(marker, { status: 'running', params, started }); // and commit: info reads the pool as of the last commit
  running();
  const before = snapshot(o.mnt, o.pool);

  const goal = o.churn * capacityBytes;
  const tree = new AgedTree(o, rng, budget, capacityBytes, t0, running);
  let serial = 0;
  const next = (): number => ++serial;
  await churn(tree, o, rng, maxFile, goal, next);
  topUp(tree, o, rng, maxFile, next);
  o.onProgress?.(Math.min(tree.written, goal), goal);

  running();
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
    files: tree.live.length,
    fileBytes: tree.live.reduce((n, f) => n + f.size, 0),
    directories: tree.dirs.size - 1,
    bytesWritten: tree.written,
    creates: tree.creates,
    deletes: tree.deletes,
    operations: tree.creates + tree.deletes + tree.mkdirs,
    enospcBackoffs: tree.enospc,
    seconds: Math.round((performance.now() - t0) / 10) / 100,
    fillSeconds: tree.fillSeconds === null ? null : Math.round(tree.fillSeconds * 100) / 100,
    sequenceDigest: tree.sequenceDigest(),
  };
  writeMarker(marker, { status: result.status, params, started, finished: new Date().toISOString(), result });
  return result;
}
