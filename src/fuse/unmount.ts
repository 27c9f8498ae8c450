/**
 * Unmounting, as umount(8) does it: fusermount without a shell (mount points
 * may hold any character), and what makes a mount busy besides what the
 * kernel sees. The kernel refuses a plain unmount (EBUSY) while a file is
 * open or a cwd is inside; a library mapping of the POOL is invisible to it
 * (its file handle is closed at once: the lease is in the pool's lease
 * table), so the table is read too (read-only here: nothing is reaped or
 * made).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { LEASE_SLOT, LEASE_SLOT_SIZE, LEASES_HEADER, LEASES_HEADER_SIZE } from '../core/format/leases.js';
import { sharedPath } from '../core/format/shared.js';
import { holderAlive, leaseHeaderProblem, rangeBlocks } from './publish/lease-table.js';

const H = LEASES_HEADER.off;
const S = LEASE_SLOT.off;

/** fusermount -u (lazy: -uz, as umount -l). Works for root and for the user who mounted. */
export function fusermount(mnt: string, lazy: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('fusermount', [lazy ? '-uz' : '-u', '--', mnt], (err, _out, stderr) => {
      if (err) reject(new Error(String(stderr).trim() || err.message));
      else resolve();
    });
  });
}

/** fusermount's words for EBUSY. */
export function isBusyError(err: unknown): boolean {
  return /Device or resource busy|target is busy|EBUSY/i.test((err as Error)?.message ?? '');
}

/** A live process holding leases on the pool's blocks (a library mapping). */
export interface LeaseHolder {
  pid: number;
  /** Its command name (/proc/PID/comm), or '?' */
  command: string;
  /** Slots with a range (one mapping takes one to 16). */
  ranges: number;
  blocks: number;
}

/**
 * The live holders of leases in the pool's lease table (none when there is
 * no table, or it is not this pool's). Holders that are gone are skipped,
 * not reaped: the daemon reaps.
 */
export function leaseHolders(poolPath: string): LeaseHolder[] {
  let st: fs.BigIntStats;
  let fd: number;
  try {
    st = fs.statSync(poolPath, { bigint: true });
    fd = fs.openSync(sharedPath(st, 'leases'), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch {
    return [];
  }
  try {
    const head = Buffer.alloc(LEASES_HEADER_SIZE);
    if (fs.readSync(fd, head, 0, head.length, 0) < head.length) return [];
    if (leaseHeaderProblem(head, st)) return [];
    const high = Math.min(head.readUInt32LE(H.high), head.readUInt32LE(H.slots));
    const slots = Buffer.alloc(high * LEASE_SLOT_SIZE);
    const got = fs.readSync(fd, slots, 0, slots.length, LEASES_HEADER_SIZE);
    const byOwner = new Map<bigint, LeaseHolder | null>();
    for (let at = 0; at + LEASE_SLOT_SIZE <= got; at += LEASE_SLOT_SIZE) {
      const owner = slots.readBigUInt64LE(at + S.owner);
      const range = slots.readBigUInt64LE(at + S.range);
      if (owner === 0n || range === 0n) continue;
      let h = byOwner.get(owner);
      if (h === undefined) {
        const pid = Number(owner >> 32n);
        h = holderAlive(owner) ? { pid, command: commandOf(pid), ranges: 0, blocks: 0 } : null;
        byOwner.set(owner, h);
      }
      if (!h) continue;
      h.ranges++;
      h.blocks += rangeBlocks(range).count;
    }
    return [...byOwner.values()].filter((h): h is LeaseHolder => h !== null);
  } finally {
    fs.closeSync(fd);
  }
}

function commandOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() || '?';
  } catch {
    return '?';
  }
}

/** "pid 1234 (node): 2 ranges, 512 blocks; ..." */
export function describeHolders(holders: LeaseHolder[]): string {
  return holders.map((h) => `pid ${h.pid} (${h.command}): ${h.ranges} range${h.ranges === 1 ? '' : 's'}, ` +
    `${h.blocks} block${h.blocks === 1 ? '' : 's'}`).join('; ');
}
