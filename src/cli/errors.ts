/** Errors a command reports to the user: a message, what to do about it, and the exit code. */

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

/** A PoolError (or anything with message and hint) as a CliError with the command's exit code. */
export function poolFailure(err: { message: string; hint?: string }, exitCode: number): CliError {
  return new CliError(err.message, exitCode, err.hint);
}
