/**
 * The lease table (`<shm dir>/daxvm-<pool dev>-<pool ino>-<pool uid>.leases`,
 * docs/format.md "The lease table"): the blocks that live mappings of the
 * pool reach, so that the daemon hands none of them to anyone else. Made and
 * scanned by the daemon (src/fuse/publish/lease-table.ts), written lock-free
 * by clients (native-shim/core/lease.c). Not in the pool: it describes live
 * processes, and a daemon that finds a valid one at mount adopts it.
 */
import { bytes, constants, layout, u32, u64 } from './describe.js';

export const LEASES_HEADER = layout('leases_header', 4096, 'the lease table header (offset 0); the slots follow it', {
  magic: bytes(0, 8, 'magic `DAXVMLS1`'),
  version: u32(8, 'version (1)'),
  slot_size: u32(12, 'bytes of a slot (32)'),
  slots: u32(16, 'slots (the daemon makes 65536)'),
  high: u32(20, 'high-water mark: one past the highest slot ever claimed (raised by clients, with a compare-and-swap, before they use a slot)'),
  pool_dev: u64(24, 'pool `st_dev`'),
  pool_ino: u64(32, 'pool `st_ino`'),
  pool_uuid: bytes(40, 16, 'pool UUID (superblock offset 160)'),
  pidns: u64(56, 'the pid namespace the holders\' pids belong to (inode of `/proc/self/ns/pid`); a client in another one does not use the table'),
  retired: u32(64, 'retired: 1 once a daemon let the table go at unmount (a later daemon that adopts it sets 0); a client takes no lease in a retired table: it opens the table at the path again'),
  vouch_gen: u32(68, 'vouch generation: odd while the daemon rewrites the vouched runs, even when they hold still (a client reads them between two equal even loads)'),
  vouched: u32(72, 'vouched runs: how many of `vouch_runs` hold pool blocks the newest durable journal commit vouches for by checksum (0 = none)'),
  vouch_runs: bytes(128, 1024, 'the vouched runs, up to 128 range words as a slot\'s `range`: a client does not store into them before the daemon confirmed that commit (a writable lease reaching one is given up: EAGAIN, and the client asks the daemon for an fsync)'),
});

export const LEASE_SLOT = layout('lease_slot', 32, 'a slot, indexed from the end of the header', {
  owner: u64(0, 'owner: `pid << 32` or\'ed with the low 32 bits of the start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot); 0 = free'),
  range: u64(8, 'range: `first block << 24` or\'ed with the block count (1 to 2^24 - 1; first block below 2^40); 0 = no lease'),
  ino: u32(16, 'inode of the file it protects (for tools only)'),
  gen: u32(20, 'generation of that inode (for tools only)'),
  flags: u32(24, 'flags: bit 0 (`LEASE_WRITABLE`) = the mapping may store into the blocks; written before the range word'),
});

export const LEASES_CONSTANTS = constants('leases', 'the lease table', {
  LEASES_MAGIC: 'DAXVMLS1',
  LEASES_VERSION: 2,
  /** Bits of a range word that hold the block count; the first block is above them. */
  LEASE_COUNT_BITS: 24,
  LEASE_START_BITS: 40,
  /** A slot's `flags`: the mapping may store into its blocks. */
  LEASE_WRITABLE: 1,
  /** Range words `vouch_runs` holds. */
  LEASE_VOUCH_RUNS_MAX: 128,
});

export const { LEASES_MAGIC, LEASES_VERSION, LEASE_COUNT_BITS, LEASE_START_BITS, LEASE_WRITABLE, LEASE_VOUCH_RUNS_MAX } = LEASES_CONSTANTS.values;
export const LEASES_HEADER_SIZE = LEASES_HEADER.size;
export const LEASE_SLOT_SIZE = LEASE_SLOT.size;
