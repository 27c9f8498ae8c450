/** fusermount, without a shell (mount points may hold any character). */
import { execFile } from 'node:child_process';

/** fusermount -u (lazy: -uz, as libfuse does on exit). Works for root and for the user who mounted. */
export function fusermount(mnt: string, lazy: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('fusermount', [lazy ? '-uz' : '-u', '--', mnt], (err, _out, stderr) => {
      if (err) reject(new Error(String(stderr).trim() || err.message));
      else resolve();
    });
  });
}
