/**
 * One place where an operation's outcome becomes the number the C side
 * replies with: handlers are plain functions that return a value (0, a byte
 * count, an offset) or throw; `run` catches, maps the error (errno.ts) to a
 * negative errno, and logs every op under DEBUG=daxvm:fuse.
 */
import debug from 'debug';
import { errnoName, toNegErrno } from './errno.js';

export const log = debug('daxvm:fuse');

/** Run one op; `what` (the inode, a name...) only shows in logs and in reports of unexpected errors. */
export function run(op: string, what: number | string, fn: () => number | void): number {
  let r: number | void;
  try {
    r = fn();
  } catch (err) {
    const n = toNegErrno(err, op, String(what));
    if (log.enabled) log('%s %s -> %s', op, what, errnoName(n));
    return n;
  }
  if (log.enabled) log('%s %s -> %d', op, what, r ?? 0);
  return r ?? 0;
}
