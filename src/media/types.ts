/**
 * The media layer's contract: the pool is the only persistent state, and this
 * layer is the only code that stores bytes into it. Every store and every
 * persist barrier passes through here, so a recorder can observe them all
 * (the crash-state explorer is built on that).
 */

/** Observes every store into the pool and every persist barrier (test hook). */
export interface MediaRecorder {
  /** A store of `bytes` at pool offset `offset` (the bytes are a private copy). */
  onWrite(offset: number, bytes: Buffer): void;
  /** A persist barrier: every earlier store in [offset, offset+length) is durable. */
  onPersist(offset: number, length: number): void;
}

export type PoolLock = 'exclusive' | 'shared' | 'none';

export interface PoolOpenOptions {
  /** Map read-only: every store throws EROFS. */
  readOnly?: boolean;
  /**
   * flock() taken on the pool file for as long as it is open: a mounted pool
   * is held exclusively, so a second mount or a repairing fsck is refused.
   * Default: 'exclusive' when writable, 'shared' when read-only.
   */
  lock?: PoolLock;
}

export interface PoolCreateOptions {
  /** Overwrite an existing file (never one that is in use: its lock is taken first). */
  force?: boolean;
  /**
   * Permission bits of the pool file (umask does not apply). Default 0o600:
   * the pool holds every file's bytes, so whoever can read it can read them all.
   */
  mode?: number;
  /**
   * Group of the file (the caller must be in it, or root). The mode is set
   * (not only given to open) and the file made the caller's, even when it
   * existed before.
   */
  gid?: number;
  /** Leave the file sparse (default: allocate it on the host, so no store can ever meet a full host). */
  sparse?: boolean;
  /** Progress of the host allocation, in bytes. */
  onAllocate?: (done: number, total: number) => void;
}
