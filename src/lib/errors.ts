/**
 * Errors the library throws, shaped like Node's own fs errors: `code`
 * ('EINVAL', 'ENOENT', 'EACCES', ...), `syscall`, `path`, and `errno`
 * (negative, as Node's) when a system call failed.
 */
import { constants } from 'node:os';

export interface DaxvmErrorFields {
  code: string;
  syscall?: string;
  path?: string;
  errno?: number;
}

export class DaxvmError extends Error implements DaxvmErrorFields {
  code: string;
  syscall?: string;
  path?: string;
  errno?: number;

  constructor(fields: DaxvmErrorFields, message: string, cause?: unknown) {
    super(`${fields.code}: ${message}${fields.syscall ? `, ${fields.syscall}` : ''}${fields.path ? ` '${fields.path}'` : ''}`,
      cause === undefined ? undefined : { cause });
    this.name = 'DaxvmError';
    this.code = fields.code;
    const errno = fields.errno ?? (constants.errno as Record<string, number>)[fields.code];
    if (errno !== undefined) this.errno = errno > 0 ? -errno : errno;
    if (fields.syscall) this.syscall = fields.syscall;
    if (fields.path) this.path = fields.path;
  }
}

/** EINVAL for a bad argument, as mmap(2) says it. */
export function invalid(message: string, path?: string): DaxvmError {
  return new DaxvmError({ code: 'EINVAL', syscall: 'mmap', ...(path ? { path } : {}) }, message);
}

/** The code of a thrown Node or shim error, or undefined. */
export function codeOf(err: unknown): string | undefined {
  const c = (err as { code?: unknown })?.code;
  return typeof c === 'string' ? c : undefined;
}

/** Give a shim or fs error the path it was about (Node's errors carry one). */
export function withPath<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e && typeof e === 'object' && typeof e.code === 'string' && e.path === undefined) e.path = path;
    throw err;
  }
}
