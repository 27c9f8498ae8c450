/**
 * Errors every layer may throw or catch, in one home:
 * - PoolError: a pool refused as a whole (missing, not a pool, newer format,
 *   corrupt, locked, read-only...), by the media layer or by the file
 *   system; `hint` says what the user can do about it (the file system's
 *   refusals always carry one, the media layer's low-level ones do not).
 * - CliError: what a command reports to the user, with its exit code.
 */

export type PoolErrorCode =
  // the file system's refusals (with a hint)
  | 'ENOENT' | 'ENOTPOOL' | 'EFORMAT' | 'ECORRUPT' | 'ELOCKED' | 'ENEEDSFSCK' | 'ETRUNCATED' | 'ENOSPC'
  // the media layer's
  | 'EEXIST' | 'EROFS' | 'EINVAL' | 'EBADF' | 'EPERM';

export interface PoolErrorOptions {
  /** What the user can do about it, e.g. "run daxvm fsck --repair POOL". */
  hint?: string;
  /** The pool file. */
  path?: string;
  /** A pool fsck --repair can mend (a damaged primary superblock with a good backup), not some other file. */
  repairable?: boolean;
  cause?: unknown;
}

export class PoolError extends Error {
  readonly code: PoolErrorCode;
  readonly hint: string | undefined;
  readonly path: string | undefined;
  readonly repairable: boolean;
  constructor(code: PoolErrorCode, message: string, opts: PoolErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PoolError';
    this.code = code;
    this.hint = opts.hint;
    this.path = opts.path;
    this.repairable = opts.repairable ?? false;
  }
}

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  /** Wrong arguments or unknown command. */
  USAGE: 2,
  /** e2fsck: operational error (also info's failures). */
  OPERATIONAL: 8,
  /** mount(8): mount failure. */
  MOUNT_FAILURE: 32,
} as const;

/** What a command reports to the user: a message, what to do about it, and the exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;
  readonly hint: string | undefined;
  constructor(message: string, exitCode: number, hint?: string) {
    super(message);
    this.exitCode = exitCode;
    this.hint = hint;
  }
}

/**
 * A daemon started in a child process (a temporary mount: bench, test-load...)
 * exited before it mounted. The message keeps the command and the daemon's log
 * for a developer; `reason` and `hint` are the daemon's own words for a user.
 */
export class MountStartError extends Error {
  override readonly name = 'MountStartError';
  constructor(message: string, readonly reason: string, readonly hint: string | undefined) {
    super(message);
  }
}

/** A PoolError (or anything with message and hint) as a CliError with the command's exit code. */
export function poolFailure(err: { message: string; hint?: string | undefined }, exitCode: number): CliError {
  return new CliError(err.message, exitCode, err.hint);
}
