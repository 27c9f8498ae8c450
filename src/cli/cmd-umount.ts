/**
 * daxvm umount MNT: ask the daemon to stop (SIGTERM via its pid file); it
 * unmounts, closes the pool cleanly and exits; we wait for that. With no
 * daemon answering, fall back to `fusermount -u`, then `fusermount -uz`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import debug from 'debug';
import { fusermount } from '../fuse/unmount.js';
import { daxvmMountAt, readMounts, topMountAt } from '../core/mountinfo.js';
import { pidFilePath, processAlive, readPidFile, removePidFile } from '../fuse/runtime.js';
import { CliError, EXIT } from '../core/errors.js';

const log = debug('daxvm:cli');

/** How long a daemon may take to unmount and close its pool. */
const DAEMON_EXIT_TIMEOUT_MS = 60_000;

/** Is `pid` (from the mount point's pid file) a daxvm daemon, not a recycled pid? */
function isDaemon(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('mount') && argv.some(a => a.endsWith('main.js') || a.endsWith('daxvm'));
  } catch {
    return false;
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(100);
  }
  return cond();
}

export async function cmdUmount(mntArg: string): Promise<number> {
  const mnt = path.resolve(mntArg);
  const mounted = () => daxvmMountAt(mnt) !== undefined;
  const top = topMountAt(mnt, readMounts());
  const pid = readPidFile(mnt);
  const daemon = pid !== undefined && processAlive(pid) && isDaemon(pid) ? pid : undefined;

  if (!top || top.fstype !== 'fuse.daxvm') {
    if (daemon !== undefined) {
      // The mount is gone but its daemon lingers (it exits within a second of noticing): let it finish.
      process.kill(daemon, 'SIGTERM');
      await waitFor(() => !processAlive(daemon), DAEMON_EXIT_TIMEOUT_MS);
    }
    if (!top) throw new CliError(`${mnt} is not mounted`, EXIT.MOUNT_FAILURE);
    throw new CliError(`${mnt} is not a daxvm mount (it is ${top.fstype} from ${top.source})`, EXIT.MOUNT_FAILURE);
  }

  if (daemon !== undefined) {
    log('signalling daemon %d (pid file %s)', daemon, pidFilePath(mnt));
    process.kill(daemon, 'SIGTERM');
    if (await waitFor(() => !processAlive(daemon), DAEMON_EXIT_TIMEOUT_MS)) {
      if (!mounted()) return EXIT.OK;
      log('daemon exited but %s is still mounted', mnt);
    } else {
      process.stderr.write(`daxvm: warning: daemon ${daemon} did not exit within ${DAEMON_EXIT_TIMEOUT_MS / 1000} s\n`);
    }
  } else {
    log('no daemon answers for %s (pid file %s: %s)', mnt, pidFilePath(mnt), pid ?? 'none');
    if (pid !== undefined) removePidFile(mnt, pid);
  }

  try {
    await fusermount(mnt, false);
  } catch (err) {
    log('fusermount -u failed: %s', (err as Error).message);
    process.stderr.write(`daxvm: warning: ${mnt} could not be unmounted cleanly (${(err as Error).message}); detaching it lazily\n`);
    try {
      await fusermount(mnt, true);
    } catch (err2) {
      throw new CliError(`cannot unmount ${mnt}: ${(err2 as Error).message}`, EXIT.MOUNT_FAILURE);
    }
  }
  if (mounted()) throw new CliError(`${mnt} is still mounted`, EXIT.MOUNT_FAILURE);
  return EXIT.OK;
}
