/**
 * daxvm umount [-l] MNT, as umount(8):
 * - plain: a busy mount is refused ("target is busy", exit 32) and nothing
 *   is unmounted. Busy: a file open or a cwd inside (the kernel's own check:
 *   `fusermount -u` answers EBUSY), or a library mapping of the pool (a
 *   live lease in the pool's lease table: the kernel cannot see those).
 *   Otherwise the kernel unmounts, the daemon's session ends (ENODEV), it
 *   commits, marks the pool clean and exits; we wait for that.
 * - lazy (-l): the name is detached at once (`fusermount -uz`); the daemon
 *   serves the files still open until the last close, waits for the last
 *   lease to go, then commits, marks the pool clean and exits.
 * A mount whose daemon is gone (dead) is detached either way.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import debug from 'debug';
import { describeHolders, fusermount, isBusyError, leaseHolders } from '../fuse/unmount.js';
import { daxvmMountAt, readMounts, topMountAt } from '../core/mountinfo.js';
import { pidFilePath, processAlive, readPidFile, removePidFile } from '../fuse/runtime.js';
import { CliError, EXIT } from '../core/errors.js';

const log = debug('daxvm:cli');

/** How long a daemon may take to commit and close its pool once its mount is gone. */
const DAEMON_EXIT_TIMEOUT_MS = 60_000;
/** How long `-l` waits to see the daemon exit (an idle mount) before saying it lingers (a busy one). */
const LAZY_GRACE_MS = 1_500;

export interface UmountOptions {
  lazy?: boolean;
}

/** Is `pid` (from the mount point's pid file) a daxvm daemon, not a recycled pid? */
function isDaemon(pid: number): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('mount') && argv.some(a => a.endsWith('main.js') || a.endsWith('daxvm'));
  } catch {
    return false;
  }
}

/** Running: alive and not a zombie (a foreground daemon's parent may not have reaped it yet; it is done all the same). */
function running(pid: number): boolean {
  if (!processAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/**
 * Polls every 20 ms: a daemon exits ~0.1 s after its unmount, and each umount then waited for the next poll,
 * 50 ms on average at 100 ms (the test suite unmounts ~150 times). A poll is a kill(pid, 0) and a read of /proc/PID/stat.
 */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

function busy(mnt: string, why: string): CliError {
  return new CliError(`umount: ${mnt}: target is busy`, EXIT.MOUNT_FAILURE,
    `${why}; nothing was unmounted. 'daxvm umount -l ${mnt}' detaches it now: the daemon serves what is open ` +
    'and closes the pool after the last file and mapping are gone');
}

export async function cmdUmount(mntArg: string, o: UmountOptions = {}): Promise<number> {
  const mnt = path.resolve(mntArg);
  const lazy = o.lazy === true;
  const mounted = () => daxvmMountAt(mnt) !== undefined;
  const top = topMountAt(mnt, readMounts());
  const pid = readPidFile(mnt);
  const daemon = pid !== undefined && running(pid) && isDaemon(pid) ? pid : undefined;

  if (!top || top.fstype !== 'fuse.daxvm') {
    if (!top) {
      // After a lazy unmount the daemon may still serve what was open: it ends by itself, never killed from here.
      throw new CliError(`${mnt} is not mounted`, EXIT.MOUNT_FAILURE, daemon === undefined ? undefined
        : `its daemon (pid ${daemon}) still serves files or mappings opened before a lazy unmount, and exits after the last; ` +
          `kill ${daemon} stops it now`);
    }
    throw new CliError(`${mnt} is not a daxvm mount (it is ${top.fstype} from ${top.source})`, EXIT.MOUNT_FAILURE);
  }
  const pool = top.source;
  // Another user's mount (fusermount's rule: its owner or root unmounts it). Said first: their daemon's pid
  // file is not ours to read, so the mount would look dead, and a dead mount is detached.
  const owner = Number(/(?:^|,)user_id=(\d+)(?:,|$)/.exec(top.superOptions)?.[1] ?? NaN);
  const me = process.geteuid?.();
  if (me !== undefined && me !== 0 && Number.isInteger(owner) && owner !== me) {
    throw new CliError(`${mnt} was mounted by another user (uid ${owner}): only that user or root can unmount it`, EXIT.MOUNT_FAILURE);
  }

  if (daemon === undefined) {
    // A dead mount: nothing serves it, so nothing can be lost by detaching it.
    log('no daemon answers for %s (pid file %s: %s)', mnt, pidFilePath(mnt), pid ?? 'none');
    if (pid !== undefined) removePidFile(mnt, pid);
    try {
      await fusermount(mnt, lazy);
    } catch (err) {
      if (lazy) throw new CliError(`cannot unmount ${mnt}: ${(err as Error).message}`, EXIT.MOUNT_FAILURE);
      process.stderr.write(`daxvm: warning: ${mnt} has no daemon and could not be unmounted (${(err as Error).message}); detaching it\n`);
      await fusermount(mnt, true).catch((err2: Error) => {
        throw new CliError(`cannot unmount ${mnt}: ${err2.message}`, EXIT.MOUNT_FAILURE);
      });
    }
    if (mounted()) throw new CliError(`${mnt} is still mounted`, EXIT.MOUNT_FAILURE);
    return EXIT.OK;
  }

  if (!lazy) {
    const holders = leaseHolders(pool);
    if (holders.length) throw busy(mnt, `library mappings of the pool are live (${describeHolders(holders)})`);
  }
  try {
    await fusermount(mnt, lazy);
  } catch (err) {
    if (!lazy && isBusyError(err)) {
      throw busy(mnt, `a file is open or a working directory is inside (fuser -vm ${mnt} lists the processes)`);
    }
    throw new CliError(`cannot unmount ${mnt}: ${(err as Error).message}`, EXIT.MOUNT_FAILURE);
  }
  if (mounted()) throw new CliError(`${mnt} is still mounted`, EXIT.MOUNT_FAILURE);
  log('%s unmounted%s; waiting for daemon %d', mnt, lazy ? ' lazily' : '', daemon);

  // The kernel ends the daemon's session (at once, or after the last close when lazy); it commits and exits.
  if (await waitFor(() => !running(daemon), lazy ? LAZY_GRACE_MS : 2_000)) return EXIT.OK;
  const holders = leaseHolders(pool);
  if (lazy || holders.length) {
    const what = [lazy ? 'the files still open' : '', holders.length ? `the library mappings of the pool (${describeHolders(holders)})` : '']
      .filter(Boolean).join(' and ');
    process.stderr.write(`daxvm: ${mnt} is detached; its daemon (pid ${daemon}) serves ${what || 'what is still open'} ` +
      'and closes the pool after the last is gone\n');
    return EXIT.OK;
  }
  if (!(await waitFor(() => !running(daemon), DAEMON_EXIT_TIMEOUT_MS))) {
    process.stderr.write(`daxvm: warning: ${mnt} is unmounted, but its daemon ${daemon} did not exit within ${DAEMON_EXIT_TIMEOUT_MS / 1000} s\n`);
  }
  return EXIT.OK;
}
