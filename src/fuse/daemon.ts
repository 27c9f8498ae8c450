/**
 * The mount's lifetime, in the daemon process: open the pool, mount, answer
 * requests on this thread (lowlevel.ts) until the session ends or we are told
 * to stop, then close the file system cleanly (the pool is marked clean) and
 * return the exit code. Every exit says why in the log.
 *
 * The session ends by itself when the kernel is done with the mount: ENODEV
 * after `umount`/`fusermount -u`, or after a lazy unmount once its last user
 * (open file, cwd, mapping) is gone, or when the connection is aborted. Until
 * then a lazily unmounted mount keeps being served. Library mappings of the
 * pool are invisible to the kernel: after the session ends the pool stays
 * open until the lease table has no live lease. SIGTERM/SIGINT/SIGHUP
 * detach the mount (`fusermount -uz`) and stop at once.
 *
 * The daemon must never make a synchronous call into its own mount: requests
 * are answered on this very thread. It looks at its mount point only before
 * mounting, and at /proc/self/mountinfo, which does not touch the mount.
 */
import { readdirSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import debug from 'debug';
import { FsError, openFileSystem, PoolError, type FileSystem } from '../fs/index.js';
import { FuseSession } from './lowlevel.js';
import { daxvmMountAt, readMounts } from '../core/mountinfo.js';
import { buildOps } from './ops.js';
import { installExitReport, type ExitReport } from './exit-report.js';
import { fuseOptionString, MountOptionError, type MountOptions } from './options.js';
import { ReadyChannel } from './protocol.js';
import { removePidFile, writePidFile } from './runtime.js';
import { fusermount } from './unmount.js';
import { MountState } from './state.js';
import { SharedState } from './publish/index.js';

const log = debug('daxvm:fuse');

/** mount(8)'s exit code for a mount failure. */
export const EXIT_MOUNT_FAILURE = 32;

/** Largest WRITE the kernel sends us (libfuse's receive buffer holds 1 MiB and a header). */
const MAX_WRITE = 1024 * 1024;
/** Seconds the kernel may remember that a name does not exist: every name is made through it. */
const NEGATIVE_TIMEOUT_S = 3600;

export interface DaemonConfig {
  /** Absolute path of the pool file. */
  pool: string;
  /** Absolute, normalized mount point (an existing directory). */
  mountpoint: string;
  options: MountOptions;
  /** Pipe to the parent `daxvm mount` (background mode); see protocol.ts. */
  readyFd?: number;
  /** How the user runs daxvm where they are ('npx daxvm', 'node /path/main.js'): the foreground line's umount pastes as printed. */
  cli?: string;
}

/** What stands in the way of mounting on `mnt`, as mount(8) would say it; undefined: nothing. */
function checkMountpoint(mnt: string, nonempty: boolean): { message: string; hint?: string } | undefined {
  try {
    if (!statSync(mnt).isDirectory()) return { message: `mount point ${mnt} is not a directory` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      return {
        message: `${mnt}: a dead FUSE mount is in the way (transport endpoint is not connected)`,
        hint: `remove it with: fusermount -uz ${mnt}`,
      };
    }
    if (code === 'ENOENT') return { message: `mount point ${mnt} does not exist` };
    return { message: `mount point ${mnt}: ${(err as Error).message}` };
  }
  if (daxvmMountAt(mnt)) {
    return { message: `${mnt} is already a mount point`, hint: `unmount it first (daxvm umount ${mnt})` };
  }
  if (!nonempty) {
    try {
      if (readdirSync(mnt).length > 0) {
        return { message: `mount point ${mnt} is not empty`, hint: 'use an empty directory, or -o nonempty to mount over it' };
      }
    } catch { /* let the mount itself say */ }
  }
  return undefined;
}

/** How often the lease table is read while the daemon waits for the last mapping of an unmounted pool. */
const LEASE_POLL_MS = 200;

/** Wait until no live lease is left in the pool's lease table (or stop() says so), saying so in the log. */
async function awaitLeases(shared: SharedState, stop: () => boolean): Promise<void> {
  const table = shared.leases;
  if (!table || table.live().length === 0) return;
  process.stderr.write(`daxvm: the mount is gone, but library mappings of the pool are live (${table.counts().leases} lease slot(s)): ` +
    'the pool stays open until the last is dropped\n');
  const since = Date.now();
  while (!stop() && table.live().length > 0) await sleep(LEASE_POLL_MS);
  if (!stop()) process.stderr.write(`daxvm: the last lease is gone (after ${((Date.now() - since) / 1000).toFixed(1)} s)\n`);
}

/** What the daemon holds once its pool is open: the file system, the shared state, and the FUSE option string. */
interface Opened {
  fs: FileSystem;
  shared: SharedState;
  optionString: string;
}

/** Options, mount point, then the pool (with the shared state it publishes); or why not, as mount(8) would say it. */
function openForMount(cfg: DaemonConfig): Opened | { message: string; hint?: string } {
  const { pool, mountpoint: mnt, options } = cfg;
  let optionString: string;
  try {
    optionString = fuseOptionString(pool, options);
  } catch (err) {
    if (err instanceof MountOptionError) return { message: err.message };
    throw err;
  }
  const blocked = checkMountpoint(mnt, options.nonempty);
  if (blocked) return blocked;
  const shared = SharedState.start(pool);
  try {
    const fs = openFileSystem(pool, {
      readOnly: options.readOnly,
      prewrite: !options.readOnly,
      ...(options.commitIntervalMs !== undefined ? { commitIntervalMs: options.commitIntervalMs } : {}),
      ...(shared.blockLeases ? { leases: shared.blockLeases } : {}),
    });
    return { fs, shared, optionString };
  } catch (err) {
    shared.close();
    if (err instanceof PoolError) return { message: `cannot mount ${pool}: ${err.message}`, ...(err.hint !== undefined ? { hint: err.hint } : {}) };
    return { message: `cannot open ${pool}: ${(err as Error).message}` };
  }
}

/** What to do when FUSE refuses the mount, from its message. */
function fuseRefusedHint(why: string): string {
  return /\/dev\/fuse: Permission denied/.test(why) ? 'this user may not open /dev/fuse: mount as root, or ask root to let users open it (Debian makes it 0666)'
    : /\/dev\/fuse: No such file/.test(why) ? 'load the fuse kernel module (modprobe fuse) or, in a container, pass /dev/fuse in'
      : 'check that /dev/fuse exists and that fusermount3 (Debian: fuse3) is installed';
}

/**
 * The daemon's one way out, taken once whatever asks first (the kernel ending
 * the session, a signal, an internal error): detach the mount if it is still
 * there, drop the handles, wait for the last lease when the kernel ended it,
 * close the pool cleanly, and settle `done` with the exit code.
 */
class Stopper {
  session: FuseSession | undefined;
  mountId: number | undefined;
  /** A signal asked to stop: also ends a wait for leases. */
  signalled = false;
  readonly done: Promise<number>;
  private finish!: (code: number) => void;
  private stopping = false;

  constructor(private readonly cfg: DaemonConfig, private readonly opened: Opened, private readonly state: MountState,
    private readonly exitReport: ExitReport) {
    this.done = new Promise<number>(resolve => { this.finish = resolve; });
  }

  private stillMounted(): boolean {
    try {
      const mounts = readMounts();
      return this.mountId !== undefined ? mounts.some(m => m.id === this.mountId) : daxvmMountAt(this.cfg.mountpoint, mounts) !== undefined;
    } catch {
      return true; // cannot tell
    }
  }

  async shutdown(reason: string, code = 0, byKernel = false): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const { pool, mountpoint: mnt } = this.cfg;
    const { fs, shared } = this.opened;
    process.stderr.write(`daxvm: stopping (${reason})\n`);
    this.exitReport.reason(reason);
    log('shutting down: %s', reason);
    if (this.session !== undefined && this.stillMounted()) {
      try {
        await fusermount(mnt, true);
      } catch (err) {
        process.stderr.write(`daxvm: unmounting ${mnt} failed: ${(err as Error).message}\n`);
      }
    }
    this.session?.close(false);
    this.state.releaseAll();
    // The mount is gone, its mappings may not be: keep the pool open (and locked) until the last lease goes.
    if (byKernel) await awaitLeases(shared, () => this.signalled);
    const left = shared.leases?.live().length ?? 0;
    if (left) process.stderr.write(`daxvm: ${left} lease range(s) of library mappings live at exit: the lease table is kept for the next mount; their msync answers ENOTCONN\n`);
    try {
      fs.close();
      log('pool %s closed cleanly', pool);
      process.stderr.write(`daxvm: ${pool} closed cleanly\n`);
    } catch (err) {
      process.stderr.write(`daxvm: closing ${pool} failed: ${(err as Error).stack ?? err}\n`);
      code = code || 1;
    }
    shared.close();
    try { removePidFile(mnt); } catch { /* best effort */ }
    this.finish(code);
  }
}

export async function runDaemon(cfg: DaemonConfig): Promise<number> {
  const exitReport = installExitReport({ pool: cfg.pool, mountpoint: cfg.mountpoint }); // every exit logs why (edges)
  const channel = new ReadyChannel(cfg.readyFd);
  const { pool, mountpoint: mnt, options } = cfg;
  const fail = (message: string, hint?: string): number => {
    channel.fail(message, hint, EXIT_MOUNT_FAILURE);
    return EXIT_MOUNT_FAILURE;
  };

  const opened = openForMount(cfg);
  if (!('fs' in opened)) return fail(opened.message, opened.hint);
  const { fs, shared, optionString } = opened;
  FsError.stackTraces = false; // errors are answers here, never printed
  shared.publish(fs, { allowOther: options.allowOther, readOnly: options.readOnly, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  const state = new MountState(fs, { readOnly: options.readOnly, noOpen: options.noOpen });
  state.sharedDramKB = () => shared.dramKB();
  const leases = shared.leases;
  state.libraryMayStore = leases ? () => leases.everClaimed() : () => true;
  state.sharedStats = () => shared.stats();
  const stopper = new Stopper(cfg, opened, state, exitReport);

  log('mounting %s on %s with -o %s', pool, mnt, optionString);
  let session: FuseSession;
  try {
    session = FuseSession.mount(mnt, optionString, buildOps(state), (io) => { state.io = io; }, {
      negTimeout: NEGATIVE_TIMEOUT_S,
      maxWrite: MAX_WRITE,
      noOpen: options.noOpen,
      onEnd: (why) => void stopper.shutdown(why, 0, true),
      onError: (err) => {
        process.stderr.write(`daxvm: internal error in a request (answered EIO): ${(err as Error)?.stack ?? err}\n`);
      },
    });
  } catch (err) {
    // Never leave a dead mount behind.
    if (daxvmMountAt(mnt)) await fusermount(mnt, true).catch(() => undefined);
    try { fs.close(); } catch { /* report the mount error */ }
    shared.close();
    const why = (err as Error).message;
    return fail(`FUSE refused to mount ${pool} on ${mnt}: ${why}`, fuseRefusedHint(why));
  }
  stopper.session = session;
  state.requestCounts = () => session.requestCounts();
  stopper.mountId = daxvmMountAt(mnt)?.id;

  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(sig, () => {
      stopper.signalled = true; // also ends a wait for leases
      void stopper.shutdown(`signal ${sig}`);
    });
  }
  // A foreground daemon whose stderr reader went away (mount -f ... | head): EPIPE on every log line. Unhandled,
  // each one was an uncaught exception whose report failed again, and the daemon spun at 100% CPU, never exiting.
  process.stderr.on('error', () => undefined);
  process.on('uncaughtException', (err: Error) => {
    process.stderr.write(`daxvm: internal error: ${err.stack ?? err}\n`);
    void stopper.shutdown('internal error', 1);
  });

  try {
    writePidFile(mnt);
  } catch (err) {
    process.stderr.write(`daxvm: cannot write pid file: ${(err as Error).message}\n`);
  }
  log('mounted %s on %s (pid %d)', pool, mnt, process.pid);
  if (channel.attached) channel.ready();
  else process.stderr.write(`daxvm: ${pool} mounted on ${mnt}; Ctrl-C or '${cfg.cli ?? 'daxvm'} umount ${mnt}' unmounts\n`);
  return stopper.done;
}
