/**
 * A lease table at the pool's path that this daemon does not adopt (of
 * another version: a daxvm before a format change left it, its daemon
 * killed). Its clients keep it mapped for life and, unless it is retired,
 * go on taking leases in it after the file at the path was replaced; a
 * daemon that never looks at it would reuse, zero or vouch for (by
 * checksum, vouch.ts) blocks their mappings still reach. So it is retired
 * first, as an unmount does (a client that takes a lease now either is
 * seen by the scan after, or sees `retired`, gives the lease up and opens
 * the path again), and its live leases keep counting, all as writable
 * (a version-1 slot has no flags), until their holders drop them.
 *
 * Only the header's magic, `slot_size`, `slots`, `high`, `pool_dev`,
 * `pool_ino`, `pidns` and `retired`, and a slot's `owner` and `range` words
 * are read: they are where they were in version 1. Holders in another pid namespace cannot be
 * told alive or dead: that table is retired and its leases not counted.
 */
import fs from 'node:fs';
import type { BlockRun } from '../../fs/api.js';
import type { MapHandle } from '../../core/native.js';
import { LEASE_COUNT_BITS, LEASE_SLOT, LEASE_SLOT_SIZE, LEASES_HEADER, LEASES_HEADER_SIZE, LEASES_MAGIC } from '../../core/format/leases.js';
import { native } from './native.js';

const H = LEASES_HEADER.off;
const SLOT_WORDS = LEASE_SLOT_SIZE / 8;
const OWNER_WORD = LEASE_SLOT.off.owner / 8;
const RANGE_WORD = LEASE_SLOT.off.range / 8;

export class ForeignLeases {
  private constructor(
    private readonly handle: MapHandle,
    private readonly words: BigUint64Array,
    private readonly high: Uint32Array,
    private readonly slots: number,
  ) {}

  /**
   * Retire the table file at `path` if it is one (our magic); its leases, when it
   * names this pool, its holders share our pid namespace and a slot is laid out as ours, else undefined.
   */
  static retire(path: string, pool: { dev: bigint; ino: bigint }, pidns: bigint): ForeignLeases | undefined {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
    } catch {
      return undefined;
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size < LEASES_HEADER_SIZE) return undefined;
      const handle = native.map(fd, st.size, true);
      const ab = native.view(handle, 0, st.size);
      const head = Buffer.from(ab, 0, LEASES_HEADER_SIZE);
      if (head.toString('latin1', H.magic, H.magic + LEASES_MAGIC.length) !== LEASES_MAGIC) {
        native.unmap(handle);
        return undefined;
      }
      Atomics.store(new Uint32Array(ab, H.retired, 1), 0, 1);
      native.fence(); // retired, then the scans (live)
      const slots = head.readUInt32LE(H.slots);
      if (head.readUInt32LE(H.slot_size) !== LEASE_SLOT_SIZE || head.readBigUInt64LE(H.pidns) !== pidns ||
        head.readBigUInt64LE(H.pool_dev) !== pool.dev || head.readBigUInt64LE(H.pool_ino) !== pool.ino ||
        st.size < LEASES_HEADER_SIZE + slots * LEASE_SLOT_SIZE) {
        native.unmap(handle);
        return undefined;
      }
      return new ForeignLeases(handle, new BigUint64Array(ab, LEASES_HEADER_SIZE, slots * SLOT_WORDS),
        new Uint32Array(ab, H.high, 1), slots);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The ranges its live holders still lease (nothing is written: the slots are not ours to reap). */
  live(alive: (owner: bigint) => boolean): BlockRun[] {
    const out: BlockRun[] = [];
    const high = Math.min(Atomics.load(this.high, 0), this.slots);
    for (let s = 0; s < high; s++) {
      const owner = Atomics.load(this.words, s * SLOT_WORDS + OWNER_WORD);
      const range = Atomics.load(this.words, s * SLOT_WORDS + RANGE_WORD);
      if (owner === 0n || range === 0n || !alive(owner)) continue;
      out.push(rangeOf(range));
    }
    return out;
  }

  close(): void {
    native.unmap(this.handle);
  }
}

function rangeOf(range: bigint): BlockRun {
  const bits = BigInt(LEASE_COUNT_BITS); // unchanged since version 1
  return { start: Number(range >> bits), count: Number(range & ((1n << bits) - 1n)) };
}
