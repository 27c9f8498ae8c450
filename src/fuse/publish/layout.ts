/**
 * Byte layouts of daxvm's shared memory (docs/format.md, "Shared memory"),
 * the daemon's side; the C core's is native-shim/core/shared_format.h and
 * test/shared-format.test.ts fails when the two disagree. (They move to
 * src/core/format/ with the pool's layouts.)
 */

/** The lease table: `<shm dir>/daxvm-<pool dev>-<pool ino>-<pool owner uid>.leases` (lowercase hex). */
export const LEASES = {
  MAGIC: 0x31534c4d56584144n, // the bytes "DAXVMLS1"
  VERSION: 1,
  HEADER_SIZE: 4096,
  OFF_MAGIC: 0,
  OFF_VERSION: 8,
  OFF_SLOT_SIZE: 12,
  OFF_SLOTS: 16,
  /** One past the highest slot ever claimed (clients raise it before using a slot). */
  OFF_HIGH: 20,
  OFF_POOL_DEV: 24,
  OFF_POOL_INO: 32,
  OFF_POOL_UUID: 40,
  /** The pid namespace (inode of /proc/self/ns/pid) holders' pids are in. */
  OFF_PIDNS: 56,
  SLOT_SIZE: 32,
  SLOT_OFF_OWNER: 0,
  SLOT_OFF_RANGE: 8,
  SLOT_OFF_INO: 16,
  SLOT_OFF_GEN: 20,
  COUNT_BITS: 24,
  START_BITS: 40,
  /** Slots a daemon makes (2 MiB). */
  DEFAULT_SLOTS: 65536,
} as const;

/** The directory of the shared files: $DAXVM_SHM_DIR, else /dev/shm (the C core reads the same variable). */
export function shmDir(): string {
  return process.env.DAXVM_SHM_DIR || '/dev/shm';
}

/** What names a pool's shared files: the pool file's stat. */
export interface SharedName {
  dev: bigint;
  ino: bigint;
  uid: number | bigint;
}

/**
 * The name of a pool's shared file of the given kind ('leases', 'ns'). The
 * owner's uid is part of it: /dev/shm is sticky, so a file another user's
 * daemon left for a pool with a recycled inode number could be neither
 * replaced nor removed by this pool's owner.
 */
export function sharedPath(pool: SharedName, kind: 'leases' | 'ns'): string {
  const hex = (n: number | bigint): string => n.toString(16);
  return `${shmDir()}/daxvm-${hex(pool.dev)}-${hex(pool.ino)}-${hex(pool.uid)}.${kind}`;
}
