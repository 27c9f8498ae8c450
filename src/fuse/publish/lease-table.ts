/**
 * The lease table, the daemon's side (docs/format.md, "The lease table"):
 * made (or adopted, after a daemon that died) at mount, next to the pool's
 * other shared file in /dev/shm, no more open than the pool; scanned before
 * any freed block becomes reusable (BlockLeases in src/fs/api.ts); dead
 * holders' slots reaped; removed at a clean unmount when no lease is left.
 * The clients' half is native-shim/core/lease.c.
 */
import fs from 'node:fs';
import createDebug from 'debug';
import type { BlockLeases, BlockRun } from '../../fs/api.js';
import type { MapHandle } from '../../core/native.js';
import { allocateHost, hostShortfall, mergeRuns } from '../../fs/index.js';
import { native } from './native.js';
import { ForeignLeases } from './lease-foreign.js';
import {
  LEASE_COUNT_BITS, LEASE_SLOT, LEASE_SLOT_SIZE, LEASE_VOUCH_RUNS_MAX, LEASE_WRITABLE, LEASES_HEADER, LEASES_HEADER_SIZE,
  LEASES_MAGIC, LEASES_VERSION,
} from '../../core/format/leases.js';
import { sharedPath } from '../../core/format/shared.js';

const log = createDebug('daxvm:fuse');

const H = LEASES_HEADER.off;
/** The slots as 64-bit words: a slot's owner and range words by index. */
const SLOT_WORDS = LEASE_SLOT_SIZE / 8;
const OWNER_WORD = LEASE_SLOT.off.owner / 8;
const RANGE_WORD = LEASE_SLOT.off.range / 8;
/** A slot's flags word, as an index into the slots seen as 32-bit words. */
const FLAGS_U32 = LEASE_SLOT.off.flags / 4;
const SLOT_U32S = LEASE_SLOT_SIZE / 4;
/** The most blocks a range word holds. */
const COUNT_MAX = 2 ** LEASE_COUNT_BITS - 1;
/** Slots a daemon makes (2 MiB): its choice, not the format's (clients read the header). */
const DEFAULT_SLOTS = 65536;

/** Who a pool is: what a shared file must match to be this pool's. */
export interface PoolIdentity {
  path: string;
  dev: bigint;
  ino: bigint;
  uid: number;
  gid: number;
  /** Permission bits of the pool file. */
  mode: number;
  uuid: Buffer;
  /** Inode count of the pool (superblock offset 40). */
  inodeCount: number;
}

export function poolIdentity(poolPath: string): PoolIdentity {
  const st = fs.statSync(poolPath, { bigint: true });
  const uuid = Buffer.alloc(16);
  const count = Buffer.alloc(4);
  const fd = fs.openSync(poolPath, 'r');
  try {
    fs.readSync(fd, uuid, 0, 16, 160); // the superblock's UUID (docs/format.md)
    fs.readSync(fd, count, 0, 4, 40); // and its inode count
  } finally {
    fs.closeSync(fd);
  }
  return {
    path: poolPath, dev: st.dev, ino: st.ino, uid: Number(st.uid), gid: Number(st.gid), mode: Number(st.mode & 0o777n), uuid,
    inodeCount: count.readUInt32LE(0),
  };
}

/** The inode of this process's pid namespace: holders' pids mean something only within it. */
export function pidNamespace(): bigint {
  try {
    return fs.statSync('/proc/self/ns/pid', { bigint: true }).ino;
  } catch {
    return 0n;
  }
}

/**
 * What is wrong with a lease table header for the pool (dev, ino), or
 * undefined: magic, version, slot size and the pool it names. The daemon
 * adopting a table and `umount` reading its holders both ask this.
 */
export function leaseHeaderProblem(head: Buffer, pool: { dev: bigint; ino: bigint }): string | undefined {
  if (head.toString('latin1', H.magic, H.magic + LEASES_MAGIC.length) !== LEASES_MAGIC) return 'no lease table magic';
  if (head.readUInt32LE(H.version) !== LEASES_VERSION || head.readUInt32LE(H.slot_size) !== LEASE_SLOT_SIZE) return 'another version';
  if (head.readBigUInt64LE(H.pool_dev) !== pool.dev || head.readBigUInt64LE(H.pool_ino) !== pool.ino) return 'of another pool (made anew at the same path?)';
  return undefined;
}

/** The blocks a slot's range word covers. */
export function rangeBlocks(range: bigint): BlockRun {
  return { start: Number(range >> BigInt(LEASE_COUNT_BITS)), count: Number(range & ((1n << BigInt(LEASE_COUNT_BITS)) - 1n)) };
}

/** Is the holder named by an owner word (pid << 32 | start time's low 32 bits) still running? */
export function holderAlive(owner: bigint): boolean {
  const pid = Number(owner >> 32n);
  const start = Number(owner & 0xffffffffn);
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false; // no such process
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields 3, 4, ...
  const state = fields[0];
  if (state === 'Z' || state === 'X') return false; // exited: its memory, and so its mappings, are gone
  return Number(BigInt(fields[19] ?? '0') & 0xffffffffn) === start; // field 22: start time
}

export class LeaseTable implements BlockLeases {
  readonly path: string;
  private readonly fd: number;
  private readonly handle: MapHandle;
  private readonly header: DataView;
  private readonly words: BigUint64Array;
  private readonly high: Uint32Array;
  /** The header's `retired` word: set at a clean unmount, cleared by the daemon that adopts the table. */
  private readonly retired: Uint32Array;
  /** The vouched runs (docs/format.md): vouch_gen, vouched and vouch_runs of the header. */
  private readonly vouchGen: Uint32Array;
  private readonly vouchCount: Uint32Array;
  private readonly vouchRuns: BigUint64Array;
  /** The slots' flags words (LEASE_WRITABLE), by slot * SLOT_U32S + FLAGS_U32. */
  private readonly slotU32: Uint32Array;
  readonly slots: number;
  /** Called before each scan: orders it after the publication of what was freed (set by the publisher). */
  beforeScan: (() => void) | undefined;
  reaped = 0;
  scans = 0;

  /**
   * Has any client ever claimed a slot of this table? Clients raise the high-water mark before they use a
   * slot, and every mapping of the pool takes a lease first: while it is 0, nothing stored into the pool
   * behind the kernel (the mount's keep_cache, src/fuse/ops-data.ts).
   */
  everClaimed(): boolean {
    return Atomics.load(this.high, 0) > 0;
  }

  private constructor(path: string, fd: number, size: number, private foreign?: ForeignLeases) {
    this.path = path;
    this.fd = fd;
    this.handle = native.map(fd, size, true);
    const ab = native.view(this.handle, 0, size);
    this.header = new DataView(ab, 0, LEASES_HEADER_SIZE);
    this.slots = this.header.getUint32(H.slots, true);
    this.words = new BigUint64Array(ab, LEASES_HEADER_SIZE, (this.slots * LEASE_SLOT_SIZE) / 8);
    this.high = new Uint32Array(ab, H.high, 1);
    this.retired = new Uint32Array(ab, H.retired, 1);
    this.vouchGen = new Uint32Array(ab, H.vouch_gen, 1);
    this.vouchCount = new Uint32Array(ab, H.vouched, 1);
    this.vouchRuns = new BigUint64Array(ab, H.vouch_runs, LEASE_VOUCH_RUNS_MAX);
    this.slotU32 = new Uint32Array(ab, LEASES_HEADER_SIZE, (this.slots * LEASE_SLOT_SIZE) / 4);
    // Vouches a daemon before us published stay until our recovery made them history (fs/open.ts unvouches).
    Atomics.store(this.retired, 0, 0); // adopted (or new): clients may lease here again
  }

  /** See BlockLeases.vouch: publish, then scan (the clients take, then read: lease.c's meets_vouched). */
  vouch(runs: BlockRun[]): boolean {
    const words: bigint[] = [];
    for (const r of runs) {
      for (let at = r.start, left = r.count; left > 0; ) {
        const c = Math.min(left, COUNT_MAX);
        words.push((BigInt(at) << BigInt(LEASE_COUNT_BITS)) | BigInt(c));
        at += c;
        left -= c;
      }
    }
    // A replaced table's leases count as writable (lease-foreign.ts): publishing changes nothing for its clients.
    if (words.length > LEASE_VOUCH_RUNS_MAX || (this.foreign && overlaps(runs, this.foreignLive()))) return false;
    // Odd while the runs change: a client reading them then reads again.
    const odd = Atomics.load(this.vouchGen, 0) | 1;
    Atomics.store(this.vouchGen, 0, odd);
    Atomics.store(this.vouchCount, 0, 0);
    words.forEach((w, i) => Atomics.store(this.vouchRuns, i, w));
    Atomics.store(this.vouchCount, 0, words.length);
    Atomics.store(this.vouchGen, 0, (odd + 1) >>> 0);
    // Then the scan. The table is a mapping, not a SharedArrayBuffer: a full fence, as live() does, so that the
    // stores above are visible to clients before any load below (lease.c pairs it with its compare-and-swap).
    native.fence();
    const high = Math.min(Atomics.load(this.high, 0), this.slots);
    for (let s = 0; s < high; s++) {
      const range = Atomics.load(this.words, s * SLOT_WORDS + RANGE_WORD);
      if (range === 0n || !(Atomics.load(this.slotU32, s * SLOT_U32S + FLAGS_U32) & LEASE_WRITABLE)) continue;
      if (overlaps(runs, [rangeBlocks(range)])) return false;
    }
    return true;
  }

  /** See BlockLeases.unvouch: one store (a client that read the count before it re-reads nothing it needs). */
  unvouch(): void {
    Atomics.store(this.vouchCount, 0, 0);
  }

  /**
   * The pool's lease table: the one a daemon before us left, if it is this
   * pool's, of this version and no more open than the pool (its live leases
   * are adopted), else a new one. Throws with a message saying what is wrong.
   */
  static open(pool: PoolIdentity): LeaseTable {
    const path = sharedPath(pool, 'leases');
    const size = LEASES_HEADER_SIZE + DEFAULT_SLOTS * LEASE_SLOT_SIZE;
    const pidns = pidNamespace();
    const existing = openExisting(path, pool, pidns);
    if (typeof existing === 'number') {
      log('adopting the lease table %s', path);
      const have = fs.fstatSync(existing).size;
      try {
        backed(existing, path, have);
      } catch (err) {
        fs.closeSync(existing);
        throw new Error(`cannot adopt the lease table ${path}: ${(err as Error).message}`);
      }
      return new LeaseTable(path, existing, have);
    }
    let foreign: ForeignLeases | undefined;
    if (existing !== 'absent') {
      log('replacing the lease table %s: %s', path, existing);
      foreign = ForeignLeases.retire(path, pool, pidns); // its clients stop leasing there; its live leases still count
    }
    const tmp = `${path}.${process.pid}.tmp`;
    const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
    const fd = fs.openSync(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      fs.fchownSync(fd, pool.uid, pool.gid);
      fs.fchmodSync(fd, pool.mode & 0o666);
      fs.ftruncateSync(fd, size);
      backed(fd, path, size);
      const head = Buffer.alloc(LEASES_HEADER_SIZE);
      head.write(LEASES_MAGIC, H.magic, 'latin1');
      head.writeUInt32LE(LEASES_VERSION, H.version);
      head.writeUInt32LE(LEASE_SLOT_SIZE, H.slot_size);
      head.writeUInt32LE(DEFAULT_SLOTS, H.slots);
      head.writeBigUInt64LE(pool.dev, H.pool_dev);
      head.writeBigUInt64LE(pool.ino, H.pool_ino);
      pool.uuid.copy(head, H.pool_uuid);
      head.writeBigUInt64LE(pidns, H.pidns);
      fs.writeSync(fd, head, 0, head.length, 0);
      fs.renameSync(tmp, path);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      foreign?.close();
      throw new Error(`cannot make the lease table ${path}: ${(err as Error).message}`);
    }
    return new LeaseTable(path, fd, size, foreign);
  }

  /**
   * The block ranges live leases cover, sorted and merged. Slots of dead
   * holders are reaped (their ranges and their claims), whether they hold a
   * lease or not.
   */
  live(): BlockRun[] {
    this.beforeScan?.();
    native.fence(); // what the caller stored before (the publication) is visible before we read
    this.scans++;
    const high = Math.min(Atomics.load(this.high, 0), this.slots);
    const w = this.words;
    const alive = new Map<bigint, boolean>();
    const out: BlockRun[] = [];
    for (let s = 0; s < high; s++) {
      const owner = Atomics.load(w, s * SLOT_WORDS + OWNER_WORD);
      if (owner === 0n) continue;
      let ok = alive.get(owner);
      if (ok === undefined) {
        ok = holderAlive(owner);
        alive.set(owner, ok);
      }
      const range = Atomics.load(w, s * SLOT_WORDS + RANGE_WORD);
      if (!ok) {
        // Dead: nobody writes its slots any more. Range first, then the claim.
        Atomics.compareExchange(w, s * SLOT_WORDS + RANGE_WORD, range, 0n);
        Atomics.compareExchange(w, s * SLOT_WORDS + OWNER_WORD, owner, 0n);
        if (range !== 0n) this.reaped++;
        continue;
      }
      if (range === 0n) continue;
      out.push(rangeBlocks(range));
    }
    if (this.foreign) out.push(...this.foreignLive());
    return mergeRuns(out);
  }

  /** The live leases of the table this one replaced; once none is left, it is let go. */
  private foreignLive(): BlockRun[] {
    const f = this.foreign;
    if (!f) return [];
    const runs = f.live(holderAlive);
    if (runs.length === 0) {
      f.close();
      this.foreign = undefined;
    }
    return runs;
  }

  /** Slots claimed and leases held now (for stats). */
  counts(): { claimed: number; leases: number } {
    const high = Math.min(Atomics.load(this.high, 0), this.slots);
    let claimed = 0;
    let leases = 0;
    for (let s = 0; s < high; s++) {
      if (Atomics.load(this.words, s * SLOT_WORDS + OWNER_WORD) !== 0n) claimed++;
      if (Atomics.load(this.words, s * SLOT_WORDS + RANGE_WORD) !== 0n) leases++;
    }
    return { claimed, leases };
  }

  /**
   * Unmount: let the table go; remove its file when no live lease is left (a
   * later daemon adopts the rest). `retired` first, then the scan: a client
   * process keeps its table for life, and one taking a lease now either is
   * seen by this scan or sees `retired` and gives the lease up (both sides
   * sequentially consistent), then opens whatever table is at the path next.
   */
  close(): void {
    Atomics.store(this.retired, 0, 1);
    const left = this.live().length;
    try {
      const st = fs.fstatSync(this.fd);
      const now = fs.statSync(this.path);
      if (left === 0 && st.ino === now.ino && st.dev === now.dev) fs.rmSync(this.path, { force: true });
      else if (left) log('%d lease range(s) live at unmount: %s kept', left, this.path);
    } catch { /* already gone */ }
    native.unmap(this.handle);
    fs.closeSync(this.fd);
    this.foreign?.close();
  }
}

function overlaps(a: BlockRun[], b: BlockRun[]): boolean {
  return a.some((r) => b.some((l) => r.start < l.start + l.count && l.start < r.start + r.count));
}

/**
 * Host pages for the whole table before anyone maps it: clients store into
 * their slots through a mapping, and on a full tmpfs a store into a hole is
 * SIGBUS in the client (fallocate answers ENOSPC instead). 2 MiB, once.
 */
function backed(fd: number, path: string, size: number): void {
  try {
    allocateHost(fd, 0, size);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    throw new Error(hostShortfall(path, size));
  }
}

/** The fd of a usable table at path, or why there is none ('absent' when no file). */
function openExisting(path: string, pool: PoolIdentity, pidns: bigint): number | string {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'absent' : `cannot open it (${code})`;
  }
  const problem = ((): string | undefined => {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return 'not a regular file';
    if (st.uid !== pool.uid || st.gid !== pool.gid) return `owned by ${st.uid}:${st.gid}, not by the pool's owner ${pool.uid}:${pool.gid}`;
    if ((st.mode & 0o777 & ~pool.mode) !== 0) return `mode ${(st.mode & 0o777).toString(8)} is more open than the pool's ${pool.mode.toString(8)}`;
    if (st.size < LEASES_HEADER_SIZE) return 'too short';
    const head = Buffer.alloc(LEASES_HEADER_SIZE);
    fs.readSync(fd, head, 0, head.length, 0);
    const wrong = leaseHeaderProblem(head, pool);
    if (wrong) return wrong;
    if (st.size < LEASES_HEADER_SIZE + head.readUInt32LE(H.slots) * LEASE_SLOT_SIZE) return 'shorter than its slots';
    if (!head.subarray(H.pool_uuid, H.pool_uuid + 16).equals(pool.uuid)) return 'of another pool (made anew at the same path?)';
    if (head.readBigUInt64LE(H.pidns) !== pidns) return 'its holders are in another pid namespace';
    return undefined;
  })();
  if (problem === undefined) {
    // The pool's mode may have narrowed since: follow it.
    try { fs.fchmodSync(fd, fs.fstatSync(fd).mode & 0o777 & pool.mode); } catch { /* checked above */ }
    return fd;
  }
  fs.closeSync(fd);
  return problem;
}
