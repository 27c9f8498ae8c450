/**
 * Where a pool's shared memory lives (docs/format.md "Shared memory"): the
 * lease table (leases.ts) and the namespace (namespace.ts) are files of the
 * shared directory named after the pool file. The C core builds the same
 * names (native-shim/core/lease.c, ns_mounts.c).
 */

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
 * The name of a pool's shared file of the given kind ('leases', 'ns'):
 * `daxvm-<dev>-<ino>-<uid>.<kind>`, lowercase hex. The owner's uid is part of
 * it: /dev/shm is sticky, so a file another user's daemon left for a pool
 * with a recycled inode number could be neither replaced nor removed by this
 * pool's owner.
 */
export function sharedPath(pool: SharedName, kind: 'leases' | 'ns'): string {
  const hex = (n: number | bigint): string => n.toString(16);
  return `${shmDir()}/daxvm-${hex(pool.dev)}-${hex(pool.ino)}-${hex(pool.uid)}.${kind}`;
}
