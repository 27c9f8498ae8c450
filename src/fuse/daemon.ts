/**
 * The mount's lifetime, in the daemon process: open the pool, mount, answer
 * requests until told to stop (SIGTERM/SIGINT/SIGHUP) or until the mount
 * disappears underneath (fusermount -u, umount), then unmount, close the file
 * system cleanly (the pool is marked clean) and return the exit code.
 *
 * The daemon must never make a synchronous call into its own mount: FUSE
 * requests are answered on this very thread. It watches its mount through
 * /proc/self/mountinfo, which does not touch the mount.
 */
import debug from 'debug';
import { openFileSystem, PoolError, type FileSystem } from '../fs/index.js';
import { DaxFuse, fuseNativePatched } from './binding.js';
import { daxvmMountAt, readMounts } from './mountinfo.js';
import { buildOps } from './ops.js';
import { fuseOptionString, MountOptionError, type MountOptions } from './options.js';
import { ReadyChannel } from './protocol.js';
import { removePidFile, writePidFile } from './runtime.js';
import { fusermount } from './unmount.js';
import { MountState } from './state.js';

const log = debug('daxvm:fuse');

/** mount(8)'s exit code for a mount failure. */
export const EXIT_MOUNT_FAILURE = 32;

/** How often the daemon looks for its mount in /proc/self/mountinfo. */
const WATCH_INTERVAL_MS = 500;

export interface DaemonConfig {
  /** Absolute path of the pool file. */
  pool: string;
  /** Absolute, normalized mount point (an existing directory). */
  mountpoint: string;
  options: MountOptions;
  /** Pipe to the parent `daxvm mount` (background mode); see protocol.ts. */
  readyFd?: number;
}

function describeMountError(err: Error, cfg: DaemonConfig): { message: string; hint?: string } {
  const mnt = cfg.mountpoint;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOTCONN') {
    return {
      message: `${mnt}: a dead FUSE mount is in the way (transport endpoint is not connected)`,
      hint: `remove it with: fusermount -uz ${mnt}`,
    };
  }
  switch (err.message) {
    case 'Mountpoint in use':
      return { message: `${mnt} is already a mount point`, hint: `unmount it first (daxvm umount ${mnt})` };
    case 'Mountpoint does not exist':
      return { message: `mount point ${mnt} does not exist` };
    case 'Mountpoint is not a directory':
      return { message: `mount point ${mnt} is not a directory` };
    case 'fuse failed':
      return {
        message: `FUSE refused to mount ${cfg.pool} on ${mnt} (libfuse says why on the daemon's stderr)`,
        hint: 'check that /dev/fuse exists and that the mount point is an empty directory (or use -o nonempty)',
      };
  }
  return { message: `cannot mount ${cfg.pool} on ${mnt}: ${err.message}` };
}

export async function runDaemon(cfg: DaemonConfig): Promise<number> {
  const channel = new ReadyChannel(cfg.readyFd);
  const { pool, mountpoint: mnt, options } = cfg;
  const fail = (message: string, hint?: string): number => {
    channel.fail(message, hint, EXIT_MOUNT_FAILURE);
    return EXIT_MOUNT_FAILURE;
  };

  if (!fuseNativePatched) {
    return fail("@cocalc/fuse-native is not built from daxvm's patched source",
      'run `npm install` (or `npm run rebuild:fuse-native`) in the daxvm package; see scripts/fuse-native.cjs');
  }

  let optionString: string;
  try {
    optionString = fuseOptionString(pool, options);
  } catch (err) {
    if (err instanceof MountOptionError) return fail(err.message);
    throw err;
  }

  let fs: FileSystem;
  try {
    fs = openFileSystem(pool, {
      readOnly: options.readOnly,
      ...(options.commitIntervalMs !== undefined ? { commitIntervalMs: options.commitIntervalMs } : {}),
    });
  } catch (err) {
    if (err instanceof PoolError) return fail(`cannot mount ${pool}: ${err.message}`, err.hint);
    return fail(`cannot open ${pool}: ${(err as Error).message}`);
  }

  const state = new MountState(fs, { readOnly: options.readOnly });
  const fuse = new DaxFuse(mnt, buildOps(state), optionString);
  log('mounting %s on %s with -o %s', pool, mnt, optionString);
  try {
    await new Promise<void>((resolve, reject) => fuse.mount(err => (err ? reject(err) : resolve())));
  } catch (err) {
    // libfuse may have mounted before failing to set up: never leave a dead mount behind.
    if (daxvmMountAt(mnt)) await fusermount(mnt, true).catch(() => undefined);
    try { fs.close(); } catch { /* report the mount error */ }
    const d = describeMountError(err as Error, cfg);
    return fail(d.message, d.hint);
  }

  const mountId = daxvmMountAt(mnt)?.id;
  const stillMounted = (): boolean => {
    try {
      const mounts = readMounts();
      return mountId !== undefined ? mounts.some(m => m.id === mountId) : daxvmMountAt(mnt, mounts) !== undefined;
    } catch {
      return true; // cannot tell: keep serving
    }
  };

  let finish!: (code: number) => void;
  const done = new Promise<number>(resolve => { finish = resolve; });
  let stopping = false;

  const shutdown = async (reason: string, code = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(watcher);
    log('shutting down: %s', reason);
    if (stillMounted()) {
      try {
        await fusermount(mnt, true);
      } catch (err) {
        process.stderr.write(`daxvm: unmounting ${mnt} failed: ${(err as Error).message}\n`);
      }
    }
    state.releaseAll();
    try {
      fs.close();
      log('pool %s closed cleanly', pool);
    } catch (err) {
      process.stderr.write(`daxvm: closing ${pool} failed: ${(err as Error).stack ?? err}\n`);
      code = code || 1;
    }
    try { removePidFile(mnt); } catch { /* best effort */ }
    finish(code);
  };

  const watcher = setInterval(() => {
    if (!stillMounted()) void shutdown(`${mnt} was unmounted`);
  }, WATCH_INTERVAL_MS);

  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(sig, () => void shutdown(sig));
  }
  process.on('uncaughtException', (err: Error) => {
    process.stderr.write(`daxvm: internal error: ${err.stack ?? err}\n`);
    void shutdown('internal error', 1);
  });

  try {
    writePidFile(mnt);
  } catch (err) {
    process.stderr.write(`daxvm: cannot write pid file: ${(err as Error).message}\n`);
  }
  log('mounted %s on %s (pid %d)', pool, mnt, process.pid);
  if (channel.attached) channel.ready();
  else process.stderr.write(`daxvm: ${pool} mounted on ${mnt}; Ctrl-C or 'daxvm umount ${mnt}' unmounts\n`);
  return done;
}
