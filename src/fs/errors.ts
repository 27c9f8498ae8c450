/** Errors that refuse a pool as a whole (mount, fsck, info), with the fix to suggest. */

export type PoolErrorCode = 'ENOENT' | 'ENOTPOOL' | 'EFORMAT' | 'ECORRUPT' | 'ELOCKED' | 'ENEEDSFSCK' | 'ETRUNCATED' | 'ENOSPC';

export class PoolError extends Error {
  readonly code: PoolErrorCode;
  /** What the user can do about it, e.g. "run daxvm fsck --repair POOL". */
  readonly hint: string;
  constructor(code: PoolErrorCode, message: string, hint: string) {
    super(message);
    this.code = code;
    this.hint = hint;
  }
}
