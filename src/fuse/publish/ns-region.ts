/**
 * The namespace region, the daemon's side of its bytes (docs/format.md,
 * "The namespace"): the file in /dev/shm (no more open than the pool), its
 * sections sized from the pool's inode count, the heap of name bytes and
 * extents, and the seqlocked writes of inode records and name entries. The
 * observer logic (what to write when) is namespace.ts.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { MapHandle } from '../../core/native.js';
import type { InodeState } from '../../fs/api.js';
import {
  NS_CONSTANTS, NS_GRANULE, NS_HEADER, NS_INODE, NS_MAGIC, NS_NAME, NS_NO_BUCKET, NS_VERSION,
} from '../../core/format/namespace.js';
import { allocateHost, hostShortfall, HOST_CHUNK } from '../../fs/index.js';
import { native } from './native.js';
import { sharedPath } from '../../core/format/shared.js';
import { pidNamespace, type PoolIdentity } from './lease-table.js';

const H = NS_HEADER.off;
const I = NS_INODE.off;
const N = NS_NAME.off;
const W = 4; // bytes of a u32 word

export interface MountFacts {
  allowOther: boolean;
  readOnly: boolean;
  uid: number;
  gid: number;
}

/** An inode as its shared record holds it: the attributes as the file system has them, plus where its extents are. */
export type InodeRecord = Pick<InodeState, 'generation' | 'mode' | 'uid' | 'gid' | 'nlink' | 'size' | 'parent'> & {
  /** NS_INODE_* bits (names, extents, tables). */
  flags: number;
  /** The extents' place in the heap (granule; 0: none) and their count. */
  extents: number;
  extentCount: number;
};

const page = (n: number): number => Math.ceil(n / 4096) * 4096;
/**
 * Heap granules kept backed past the last one handed out: a reader that
 * took a record while it changed may pair an old extents place with a new
 * count (up to 65536 extents of one granule, namespace.ts) before its
 * sequence check sends it back; what it touched must not be a hole.
 */
const HEAP_AHEAD = 65536;
const pow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(2, n)));

/** This process's start time (field 22 of /proc/self/stat). */
function startTime(): bigint {
  const stat = fs.readFileSync('/proc/self/stat', 'latin1');
  return BigInt(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '0');
}

/** A heap of granules in power-of-two chunks, with a free list per size class. */
export class Heap {
  private top = 1; // granule 0 is never handed out (0 = none)
  private readonly free: number[][] = [];
  used = 0;
  /** Chunks handed out when the host could not back them: alloc answered 0 (full). */
  hostFull = 0;
  /**
   * @param reserve makes granules [0, end) safe to store into; false when the
   *   host has no space for them (then the heap is full, as when it runs out).
   */
  constructor(readonly granules: number, private readonly reserve: (end: number) => boolean = () => true) {}

  static classOf(granules: number): number {
    return Math.ceil(Math.log2(Math.max(1, granules)));
  }

  /** First granule of a chunk of at least `n` granules, or 0 when full. */
  alloc(n: number): number {
    const k = Heap.classOf(n);
    const size = 2 ** k;
    const list = this.free[k];
    let at = list?.pop();
    if (at === undefined) {
      if (this.top + size > this.granules) return 0;
      if (!this.reserve(this.top + size)) {
        this.hostFull++;
        return 0;
      }
      at = this.top;
      this.top += size;
    }
    this.used += size;
    return at;
  }

  release(at: number, n: number): void {
    if (!at) return;
    const k = Heap.classOf(n);
    (this.free[k] ??= []).push(at);
    this.used -= 2 ** k;
  }
}

export class NsRegion {
  readonly path: string;
  private readonly fd: number;
  private readonly handle: MapHandle;
  readonly bytes: Buffer;
  /** The whole region as u32 words (Atomics on sequence words). */
  private readonly words: Uint32Array;
  readonly inodeCount: number;
  readonly bucketCount: number;
  readonly nameCount: number;
  private readonly inodesOff: number;
  private readonly bucketsOff: number;
  private readonly namesOff: number;
  private readonly heapOff: number;
  readonly heap: Heap;
  /** Bytes from the start of the file backed by host pages (never given back). */
  private backedTo = 0;
  /** After the host said ENOSPC: no new attempt before this time (ms). */
  private noRoomUntil = 0;
  private nextName = 0;
  private readonly freeNames: number[] = [];
  namesUsed = 0;

  private constructor(path: string, fd: number, readonly size: number, inodeCount: number) {
    this.path = path;
    this.fd = fd;
    this.handle = native.map(fd, size, true);
    this.bytes = Buffer.from(native.view(this.handle, 0, size));
    this.words = new Uint32Array(this.bytes.buffer, this.bytes.byteOffset, size / W);
    this.inodeCount = inodeCount;
    this.bucketCount = pow2(inodeCount);
    this.nameCount = inodeCount * 2;
    this.inodesOff = NS_HEADER.size;
    this.bucketsOff = this.inodesOff + page(inodeCount * NS_INODE.size);
    this.namesOff = this.bucketsOff + page(this.bucketCount * W);
    this.heapOff = this.namesOff + page(this.nameCount * NS_NAME.size);
    this.heap = new Heap(Math.floor((size - this.heapOff) / NS_GRANULE), (end) => this.back(this.heapOff + (end + HEAP_AHEAD) * NS_GRANULE));
  }

  /**
   * Give host pages to the file up to `end` (in 2 MiB steps, at most its
   * size) before anything reads or stores there through a mapping: on a full
   * tmpfs a fault on a hole is SIGBUS, for the daemon and for every reader,
   * while fallocate answers ENOSPC. False when the host has no room.
   */
  private back(end: number): boolean {
    if (end <= this.backedTo) return true;
    if (Date.now() < this.noRoomUntil) return false; // a directory's every missing name would ask again
    const to = Math.min(this.size, Math.ceil(end / HOST_CHUNK) * HOST_CHUNK);
    try {
      allocateHost(this.fd, this.backedTo, to - this.backedTo);
    } catch {
      this.noRoomUntil = Date.now() + 1000;
      return false;
    }
    this.backedTo = to;
    return true;
  }

  static sizeFor(inodeCount: number): number {
    const granules = inodeCount * 8 + 65536;
    return NS_HEADER.size + page(inodeCount * NS_INODE.size) + page(pow2(inodeCount) * W) +
      page(inodeCount * 2 * NS_NAME.size) + page(granules * NS_GRANULE);
  }

  /** A new region for the pool (replacing any left behind: told it is dead first), not yet live. */
  static create(pool: PoolIdentity, inodeCount: number, mount: MountFacts): NsRegion {
    const path = sharedPath(pool, 'ns');
    markDead(path);
    const size = NsRegion.sizeFor(inodeCount);
    const tmp = `${path}.${process.pid}.tmp`;
    const { O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
    const fd = fs.openSync(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    let r: NsRegion | undefined;
    try {
      fs.fchownSync(fd, pool.uid, pool.gid);
      fs.fchmodSync(fd, pool.mode & 0o666);
      fs.ftruncateSync(fd, size);
      r = new NsRegion(path, fd, size, inodeCount);
      // The header, records, buckets and name entries: a reader may look at any of them. The heap as it is handed out.
      if (!r.back(r.heapOff)) throw new Error(hostShortfall(path, r.heapOff));
      const b = r.bytes;
      b.write(NS_MAGIC, H.magic, 'latin1');
      b.writeUInt32LE(NS_VERSION, H.version);
      b.writeUInt32LE(NS_HEADER.size, H.header_size);
      b.writeBigUInt64LE(pool.dev, H.pool_dev);
      b.writeBigUInt64LE(pool.ino, H.pool_ino);
      pool.uuid.copy(b, H.pool_uuid);
      b.writeUInt32LE(process.pid, H.daemon_pid);
      b.writeBigUInt64LE(startTime(), H.daemon_start);
      b.writeUInt32LE(randomBytes(4).readUInt32LE(0) || 1, H.region_gen);
      b.writeUInt32LE((mount.allowOther ? NS_CONSTANTS.values.NS_MOUNT_ALLOW_OTHER : 0) |
        (mount.readOnly ? NS_CONSTANTS.values.NS_MOUNT_READ_ONLY : 0), H.mount_flags);
      b.writeUInt32LE(mount.uid, H.mount_uid);
      b.writeUInt32LE(mount.gid, H.mount_gid);
      b.writeUInt32LE(inodeCount, H.inode_count);
      b.writeUInt32LE(r.bucketCount, H.bucket_count);
      b.writeBigUInt64LE(BigInt(r.inodesOff), H.inodes_off);
      b.writeBigUInt64LE(BigInt(r.bucketsOff), H.buckets_off);
      b.writeBigUInt64LE(BigInt(r.namesOff), H.names_off);
      b.writeUInt32LE(r.nameCount, H.name_count);
      b.writeUInt32LE(r.heap.granules, H.heap_granules);
      b.writeBigUInt64LE(BigInt(r.heapOff), H.heap_off);
      b.writeBigUInt64LE(BigInt(size), H.total_size);
      b.writeBigUInt64LE(pidNamespace(), H.pidns);
      for (let n = 0; n < r.nameCount; n++) b.writeUInt32LE(NS_NO_BUCKET, r.namesOff + n * NS_NAME.size + N.bucket);
      fs.renameSync(tmp, path);
    } catch (err) {
      if (r) native.unmap(r.handle);
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw new Error(`cannot make the namespace ${path}: ${(err as Error).message}`);
    }
    return r;
  }

  setLive(live: boolean): void {
    Atomics.store(this.words, H.live / W, live ? 1 : 0);
  }

  /** Stop: readers fall back from now on; the file goes (ours only). */
  close(): void {
    this.setLive(false);
    try {
      const st = fs.fstatSync(this.fd);
      const now = fs.statSync(this.path);
      if (st.ino === now.ino && st.dev === now.dev) fs.rmSync(this.path, { force: true });
    } catch { /* gone already */ }
    native.unmap(this.handle);
    fs.closeSync(this.fd);
  }

  // ---- inode records ---------------------------------------------------------

  private recWord(ino: number): number {
    return (this.inodesOff + ino * NS_INODE.size) / W;
  }

  /** Write a record under its sequence word; `during` runs while it is odd (extents written then). */
  writeInode(ino: number, rec: InodeRecord | null, during?: () => void): void {
    if (ino < 1 || ino >= this.inodeCount) return;
    const w = this.words;
    const at = this.recWord(ino);
    const seq = w[at]!;
    Atomics.store(w, at, seq + 1); // odd (it is even between writes: one writer)
    during?.();
    if (!rec) {
      w.fill(0, at + 1, at + NS_INODE.size / W);
    } else {
      w[at + I.generation / W] = rec.generation;
      w[at + I.mode / W] = rec.mode;
      w[at + I.uid / W] = rec.uid;
      w[at + I.gid / W] = rec.gid;
      w[at + I.nlink / W] = rec.nlink;
      w[at + I.size / W] = rec.size % 2 ** 32;
      w[at + I.size / W + 1] = Math.floor(rec.size / 2 ** 32);
      w[at + I.parent / W] = rec.parent;
      w[at + I.flags / W] = rec.flags;
      w[at + I.extents / W] = rec.extents;
      w[at + I.extent_count / W] = rec.extentCount;
    }
    Atomics.store(w, at, (Atomics.load(w, at) + 1) >>> 0); // even
  }

  /** Write extents [logical, count, physical] at heap granule `at` (inside writeInode's odd window). */
  writeExtents(at: number, extents: ReadonlyArray<{ logical: number; count: number; physical: number }>): void {
    let w = (this.heapOff + at * NS_GRANULE) / W;
    for (const e of extents) {
      this.words[w] = e.logical;
      this.words[w + 1] = e.count;
      this.words[w + 2] = e.physical % 2 ** 32;
      this.words[w + 3] = Math.floor(e.physical / 2 ** 32);
      w += 4;
    }
  }

  // ---- names -------------------------------------------------------------------

  private nameWord(n: number): number {
    return (this.namesOff + n * NS_NAME.size) / W;
  }

  /** Add a name entry at the head of its chain; its index, or -1 when the entries or the heap are full. */
  addName(parent: number, name: Buffer, hash: number, ino: number): number {
    const granules = Math.ceil(name.length / NS_GRANULE);
    const text = this.heap.alloc(granules);
    if (!text) return -1;
    let n = this.freeNames.pop();
    if (n === undefined) {
      if (this.nextName >= this.nameCount) {
        this.heap.release(text, granules);
        return -1;
      }
      n = this.nextName++;
    }
    name.copy(this.bytes, this.heapOff + text * NS_GRANULE);
    const w = this.words;
    const at = this.nameWord(n);
    const bucket = hash & (this.bucketCount - 1);
    const head = this.bucketsOff / W + bucket;
    Atomics.store(w, at, w[at]! + 1); // odd
    w[at + N.bucket / W] = bucket;
    w[at + N.parent / W] = parent;
    w[at + N.ino / W] = ino;
    w[at + N.hash / W] = hash;
    this.bytes.writeUInt16LE(name.length, this.namesOff + n * NS_NAME.size + N.name_len);
    w[at + N.name / W] = text;
    w[at + N.next / W] = w[head]!;
    Atomics.store(w, at, w[at]! + 1); // even
    Atomics.store(w, head, n + 1); // published
    this.namesUsed++;
    return n;
  }

  /** Point entry n at another inode. */
  repoint(n: number, ino: number): void {
    const w = this.words;
    const at = this.nameWord(n);
    Atomics.store(w, at, w[at]! + 1);
    w[at + N.ino / W] = ino;
    Atomics.store(w, at, w[at]! + 1);
  }

  /** Unlink entry n from its chain and free it (its bucket word says so to a reader on it). */
  removeName(n: number, nameLength: number): void {
    const w = this.words;
    const at = this.nameWord(n);
    const bucket = w[at + N.bucket / W]!;
    const next = w[at + N.next / W]!;
    // The link to n: the bucket's head or the entry before it.
    let link = this.bucketsOff / W + bucket;
    while (w[link] !== 0 && w[link] !== n + 1) link = this.nameWord(w[link]! - 1) + N.next / W;
    Atomics.store(w, at, w[at]! + 1); // odd: a reader on n starts over
    if (w[link] === n + 1) {
      if (link === this.bucketsOff / W + bucket) Atomics.store(w, link, next);
      else {
        // The entry before: its next changes under its own sequence word.
        const prev = link - N.next / W;
        Atomics.store(w, prev, w[prev]! + 1);
        w[link] = next;
        Atomics.store(w, prev, w[prev]! + 1);
      }
    }
    w[at + N.bucket / W] = NS_NO_BUCKET;
    const text = w[at + N.name / W]!;
    w[at + N.name / W] = 0;
    Atomics.store(w, at, w[at]! + 1); // even, free
    this.heap.release(text, Math.ceil(nameLength / NS_GRANULE));
    this.freeNames.push(n);
    this.namesUsed--;
  }
}

/** A region a daemon before us left: say it is dead before it is replaced (its readers fall back). */
function markDead(path: string): void {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
  } catch {
    return;
  }
  try {
    const head = Buffer.alloc(8);
    fs.readSync(fd, head, 0, 8, H.magic);
    if (head.toString('latin1') === NS_MAGIC) fs.writeSync(fd, Buffer.alloc(4), 0, 4, H.live);
  } catch { /* replaced anyway */ } finally {
    fs.closeSync(fd);
  }
}
