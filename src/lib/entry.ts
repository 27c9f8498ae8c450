/**
 * The library's `mmap` as users call it: every failure is a DaxvmError with
 * a `code` (a Node fs error or the native shim's, given the same shape), and
 * `DEBUG=daxvm:lib` says which path each mapping took and why
 * (`attached`/`stitched` from the pool, or `vanilla` and the reason).
 */
import createDebug from 'debug';
import { codeOf, DaxvmError } from './errors.js';
import { mmap as mapFile, type MmapOptions } from './map.js';
import type { Mapping } from './mapping.js';

const log = createDebug('daxvm:lib');

/** Node's "ENOENT: no such file or directory, open '/x'" without what DaxvmError adds itself. */
function reason(err: Error): string {
  return err.message.replace(/^[A-Z][A-Z0-9_]*: /, '').replace(/, \w+ '[^']*'$/, '');
}

export function asDaxvmError(err: unknown, path: string): DaxvmError {
  if (err instanceof DaxvmError) return err;
  const e = err as NodeJS.ErrnoException;
  const message = e instanceof Error ? reason(e) : String(err);
  return new DaxvmError({
    code: codeOf(err) ?? 'EIO',
    syscall: typeof e?.syscall === 'string' ? e.syscall : 'mmap',
    path: typeof e?.path === 'string' ? e.path : path,
    ...(typeof e?.errno === 'number' ? { errno: e.errno } : {}),
  }, message, err);
}

/**
 * Map `length` bytes of a file from `offset`. `file` is a path, or a Buffer
 * of its raw bytes (a name that is not UTF-8). Throws a DaxvmError, Node-style
 * (`err.code` 'ENOENT', 'EACCES', 'EISDIR', 'EINVAL'...).
 */
export function mmap(file: string | Buffer, options: MmapOptions = {}): Mapping {
  // Whatever a JavaScript caller passed (null, a number...): map.ts refuses it as EINVAL, this only names it.
  const shown = typeof file === 'string' ? file : Buffer.isBuffer(file) ? file.toString('latin1') : String(file);
  let m: Mapping;
  try {
    m = mapFile(file, options);
  } catch (err) {
    const e = asDaxvmError(err, shown);
    log('mmap %s: failed, %s', shown, e.message);
    throw e;
  }
  if (log.enabled) {
    const what = m.mode === 'vanilla'
      ? `vanilla (a plain mmap through the mount): ${m.fallbackReason ?? 'asked'}`
      : `${m.mode} from the pool (${m.runs} run${m.runs === 1 ? '' : 's'}, tracking ${m.tracking})`;
    const how = m.resolved === 'namespace' ? 'resolved in the shared namespace (no request to the daemon)'
      : `resolved through the mount${m.resolveReason ? `: ${m.resolveReason}` : ''}`;
    log('mmap %s [%d+%d, %s]: %s; %s', shown, m.offset, m.length, m.prot, what, how);
  }
  return m;
}
