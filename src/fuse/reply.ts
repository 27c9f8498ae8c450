/**
 * One place where an operation's result becomes a FUSE reply. Handlers are
 * written as plain functions that return a value or throw; `reply` catches,
 * maps the error (errno.ts) and logs every op under DEBUG=daxvm:fuse.
 */
import debug from 'debug';
import { errnoName, toNegErrno } from './errno.js';

export const log = debug('daxvm:fuse');

let served = 0;
/** Requests served so far (counted as each starts): tells a request that came right after another. */
export const requestsServed = (): number => served;

/** Reply for ops whose callback is (err, value?). */
export function reply<T>(op: string, what: string, cb: (err: number, value?: T) => void, fn: () => T): void {
  served++;
  let value: T;
  try {
    value = fn();
  } catch (err) {
    const n = toNegErrno(err, op, what);
    if (log.enabled) log('%s %s -> %s', op, what, errnoName(n));
    cb(n);
    return;
  }
  if (log.enabled) log('%s %s -> ok', op, what);
  cb(0, value);
}

/** Reply for read/write, whose callback takes the byte count or -errno as its only argument. */
export function replyCount(op: string, what: string, cb: (result: number) => void, fn: () => number): void {
  served++;
  let n: number;
  try {
    n = fn();
  } catch (err) {
    const e = toNegErrno(err, op, what);
    if (log.enabled) log('%s %s -> %s', op, what, errnoName(e));
    cb(e);
    return;
  }
  if (log.enabled) log('%s %s -> %d', op, what, n);
  cb(n);
}
