/**
 * Errors to FUSE replies: an FsError's errno name becomes a negative errno
 * number; anything else is a bug or an I/O failure below us, answered -EIO
 * (or the system errno it carries) and logged with its stack. A handler never
 * lets an exception escape: the daemon must not crash under its users.
 */
import os from 'node:os';
import { FsError } from '../fs/api.js';

const ERRNO = os.constants.errno as Readonly<Record<string, number>>;

/** errno names Node's os.constants.errno lacks (Linux numbers). */
const EXTRA: Readonly<Record<string, number>> = {
  EUCLEAN: 117,
  EFSCORRUPTED: 117, // ext4's EFSCORRUPTED is EUCLEAN ("Structure needs cleaning")
};

export const EIO = ERRNO.EIO!;

/** Positive errno number for a name; EIO when the name is unknown. */
export function errnoNumber(name: string): number {
  return ERRNO[name] ?? EXTRA[name] ?? EIO;
}

const NAMES = new Map<number, string>();
for (const [name, n] of [...Object.entries(ERRNO), ['EUCLEAN', 117] as const]) if (!NAMES.has(n)) NAMES.set(n, name);

/** The errno name of a (positive or negative) errno number, for logs. */
export function errnoName(n: number): string {
  return NAMES.get(Math.abs(n)) ?? `errno ${n}`;
}

/** A Node system error (e.g. EIO or ENOSPC from the pool file) carries a negative errno. */
function systemErrno(err: unknown): number | undefined {
  if (!(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException;
  if (typeof e.errno === 'number' && e.errno < 0 && typeof e.syscall === 'string') return -e.errno;
  return undefined;
}

export type UnexpectedLogger = (op: string, what: string, err: unknown) => void;

let logUnexpected: UnexpectedLogger = (op, what, err) => {
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  // Paths are byte strings (latin1, see binding.ts): shown as the UTF-8 text they mostly are.
  process.stderr.write(`daxvm:fuse ${op} ${Buffer.from(what, 'latin1').toString('utf8')}: unexpected error, answered ${errnoName(toErrnoQuiet(err))}: ${detail}\n`);
};

/** Replace the logger for unexpected errors (tests). Returns the previous one. */
export function setUnexpectedLogger(fn: UnexpectedLogger): UnexpectedLogger {
  const prev = logUnexpected;
  logUnexpected = fn;
  return prev;
}

function toErrnoQuiet(err: unknown): number {
  if (err instanceof FsError) return errnoNumber(err.code);
  return systemErrno(err) ?? EIO;
}

/**
 * The negative errno to answer for an exception thrown by an operation.
 * FsError is the file system's normal answer; anything else is logged.
 */
export function toNegErrno(err: unknown, op: string, what: string): number {
  if (err instanceof FsError) return -errnoNumber(err.code);
  logUnexpected(op, what, err);
  return -toErrnoQuiet(err);
}
