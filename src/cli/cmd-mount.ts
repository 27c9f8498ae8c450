/**
 * daxvm mount [POOL] [MNT] [-f] [-o opt,...]
 *
 * In the background (the default, like sshfs) the command spawns the daemon
 * detached: `node --initial-old-space-size=128 dist/cli/main.js mount POOL MNT
 * --foreground --ready-fd 3` (core/daemon-flags.ts),
 * with a pipe on fd 3 (see src/fuse/protocol.ts) and stderr appended to the
 * log in the runtime directory. It returns 0 only once the daemon said
 * "ready" and a stat of MNT from this process shows the FUSE file system;
 * otherwise it prints the daemon's reason and exits 32, as mount(8).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import debug from 'debug';
import { daxvmMountAt, readMounts, FSTYPE } from '../core/mountinfo.js';
import { MountOptionError, parseMountOptions, type MountOptions } from '../fuse/options.js';
import { decodeMessages, type DaemonMessage } from '../fuse/protocol.js';
import { ensureRuntimeDir, logFilePath } from '../fuse/runtime.js';
import { fileKind } from '../fs/open.js';
import { makePool, poolDirectory } from './cmd-mkfs.js';
import { askYes, clearCommand, clearDeadMount, describeDeadMount, mountHealth } from './dead-mount.js';
import { invocation } from './invocation.js';
import { ALLOW_LOOSE_POOL, gateLoosePool, takeAllowLoosePool } from './pool-mode.js';
import { CliError, EXIT } from '../core/errors.js';
import { formatBytes, parseSize } from '../core/output.js';
import { DAEMON_NODE_FLAGS } from '../core/daemon-flags.js';
import { mainScript } from '../core/paths.js';
import { DEFAULT_MOUNTPOINT, DEFAULT_POOL_SIZE, defaultPoolPath } from './paths.js';

const log = debug('daxvm:cli');

/** How long the parent waits for the daemon to say ready (opening a pool runs recovery). */
const READY_TIMEOUT_MS = 120_000;
/** How long the parent's own stat of the mount point may take. */
const STAT_TIMEOUT_MS = 15_000;

export interface MountCliOptions {
  foreground?: boolean;
  /** -o values, each a comma-separated list. */
  o?: string[];
  /** Clear a dead mount in the way without asking. */
  clearDead?: boolean;
  /** Internal: the daemon reports readiness on this fd (set by the background parent). */
  readyFd?: string;
}

interface Target {
  pool: string;
  mountpoint: string;
  options: MountOptions;
  /** The topmost directory this command made for the mount point: removed again if the mount fails. */
  made?: string;
}

/**
 * A daxvm mount in the way: false when it is alive. Dead (its daemon gone),
 * say so and why, then clear it when asked to (--clear-dead, or yes on a
 * terminal), else refuse with the command that clears it.
 */
async function clearIfDead(mnt: string, clear: boolean): Promise<boolean> {
  if (await mountHealth(mnt) !== 'dead') return false;
  const text = describeDeadMount(mnt);
  if (!clear) {
    process.stderr.write(`daxvm: ${text}\n`);
    clear = await askYes(`clear it now (${clearCommand(mnt)})?`);
    if (!clear) {
      throw new CliError(`${mnt} is a dead mount in the way`, EXIT.MOUNT_FAILURE,
        `clear it with: ${clearCommand(mnt)}  (or add --clear-dead to daxvm mount)`);
    }
  } else {
    process.stderr.write(`daxvm: ${text}\ndaxvm: clearing it (--clear-dead): ${clearCommand(mnt)}\n`);
  }
  try {
    await clearDeadMount(mnt);
  } catch (err) {
    throw new CliError(`cannot clear the dead mount ${mnt}: ${(err as Error).message}`, EXIT.MOUNT_FAILURE);
  }
  return true;
}

/**
 * -o remount: the kernel would flip the VFS flag alone, while the daemon and the library's direct path
 * kept writing: refused, plainly, with the two commands that do it (the mount's own pool, the options asked).
 * `daxvm mount -o remount,ro MNT` names the mount point first; mount(8) passes the pool, then the mount point.
 */
function remountRefused(poolArg: string | undefined, mntArg: string | undefined, words: string[]): CliError {
  const mounts = readMounts();
  const first = poolArg !== undefined ? daxvmMountAt(path.resolve(poolArg), mounts) : undefined;
  const mnt = first ? path.resolve(poolArg!) : path.resolve(mntArg ?? DEFAULT_MOUNTPOINT);
  const here = first ?? daxvmMountAt(mnt, mounts);
  const pool = here?.source ?? (poolArg !== undefined && !first ? path.resolve(poolArg) : 'POOL');
  // mount(8) passes the kernel's options too (user_id=0, group_id=0...): only those `daxvm mount` takes can be pasted back.
  const takes = (w: string): boolean => {
    try {
      parseMountOptions([w]);
      return true;
    } catch {
      return w === ALLOW_LOOSE_POOL;
    }
  };
  const wanted = words.filter(w => w !== '' && w !== 'remount' && w !== 'defaults' && takes(w));
  const mount = `daxvm mount ${pool} ${mnt}${wanted.length > 0 ? ` -o ${wanted.join(',')}` : ''}`;
  return here
    ? new CliError('remount is not supported by daxvm', EXIT.MOUNT_FAILURE,
      `unmount, then mount again with the options you want: daxvm umount ${mnt} && ${mount}`)
    : new CliError(`remount is not supported by daxvm, and nothing is mounted on ${mnt}`, EXIT.MOUNT_FAILURE, `to mount it: ${mount}`);
}

async function prepare(poolArg: string | undefined, mntArg: string | undefined, opts: MountCliOptions): Promise<Target> {
  const words = (opts.o ?? []).flatMap(v => v.split(',').map(w => w.trim()));
  if (words.includes('remount')) throw remountRefused(poolArg, mntArg, words);
  let options: MountOptions;
  // allow_loose_pool is the CLI's (checked here, in the parent and again in the daemon), never libfuse's.
  const { rest: fuseOpts, allow: allowLoose } = takeAllowLoosePool(opts.o ?? []);
  try {
    options = parseMountOptions(fuseOpts);
  } catch (err) {
    if (err instanceof MountOptionError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
  const mountpoint = path.resolve(mntArg ?? DEFAULT_MOUNTPOINT);
  const pool = poolArg !== undefined ? path.resolve(poolArg) : defaultPoolPath();
  if (opts.readyFd !== undefined) {
    // The daemon: the parent checked the rest; this warning lands in the daemon's log.
    gateLoosePool(pool, allowLoose);
    return { pool, mountpoint, options };
  }

  let mounts = readMounts();
  const here = daxvmMountAt(mountpoint, mounts);
  if (here) {
    if (!await clearIfDead(mountpoint, opts.clearDead ?? false)) {
      throw new CliError(`${mountpoint} is already mounted (pool ${here.source})`, EXIT.MOUNT_FAILURE,
        `to remount, run 'daxvm umount ${mountpoint}' first`);
    }
    mounts = readMounts();
  }
  const elsewhere = mounts.find(m => m.fstype === FSTYPE && m.source === pool);
  if (elsewhere && !await clearIfDead(elsewhere.mountpoint, opts.clearDead ?? false)) {
    throw new CliError(`${pool} is already mounted on ${elsewhere.mountpoint}`, EXIT.MOUNT_FAILURE,
      'a pool can be mounted once at a time');
  }

  if (!existsSync(pool)) {
    if (poolArg !== undefined) {
      throw new CliError(`pool ${pool} does not exist`, EXIT.MOUNT_FAILURE, `create it with: daxvm mkfs ${pool} --size 4G`);
    }
    const size = parseSize(DEFAULT_POOL_SIZE);
    try {
      poolDirectory(pool, true);
      process.stderr.write(`daxvm: creating the default pool ${pool} (${formatBytes(size)})\n`);
      makePool(pool, size, false, undefined, false, true);
    } catch (err) {
      // mkfs's reason, with mount's exit code (mount(8): 32)
      if (err instanceof CliError) throw new CliError(err.message, EXIT.MOUNT_FAILURE, err.hint);
      throw err;
    }
  }
  try {
    const st = statSync(pool);
    if (st.isDirectory()) {
      throw new CliError(`${pool} is a directory, not a pool file`, EXIT.MOUNT_FAILURE, 'give the pool file first, then the mount point: daxvm mount POOL MOUNTPOINT');
    }
    // A FIFO would hold the daemon's open until a writer comes; a device is no pool either.
    if (!st.isFile()) throw new CliError(`${pool} is ${fileKind(st)}, not a pool file`, EXIT.MOUNT_FAILURE, 'a pool is a regular file on the host; make one with: daxvm mkfs POOL --size 4G');
  } catch (err) {
    if (err instanceof CliError) throw err; // else: the open below says what is wrong
  }
  gateLoosePool(pool, allowLoose);

  let made: string | undefined;
  try {
    if (!statSync(mountpoint).isDirectory()) {
      throw new CliError(`mount point ${mountpoint} is not a directory`, EXIT.MOUNT_FAILURE);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      try {
        made = mkdirSync(mountpoint, { recursive: true });
      } catch (e) {
        throw new CliError(`cannot create the mount point ${mountpoint}: ${(e as Error).message}`, EXIT.MOUNT_FAILURE,
          'create it yourself, or give a mount point you can write to');
      }
      log('created mount point %s', mountpoint);
    } else if (code === 'ENOTCONN') {
      throw new CliError(`${mountpoint}: a dead FUSE mount is in the way`, EXIT.MOUNT_FAILURE,
        `remove it with: fusermount -uz ${mountpoint}`);
    } else if (err instanceof CliError) {
      throw err;
    } else {
      throw new CliError(`mount point ${mountpoint}: ${(err as Error).message}`, EXIT.MOUNT_FAILURE);
    }
  }
  return { pool, mountpoint, options, ...(made !== undefined ? { made } : {}) };
}

/** A failed mount leaves no directory behind that it made: rmdir up from the mount point to `made` (empty ones only). */
function removeMade(t: Target): void {
  if (t.made === undefined) return;
  for (let d = t.mountpoint; d.startsWith(t.made); d = path.dirname(d)) {
    try {
      rmdirSync(d);
      log('removed the mount point %s it made', d);
    } catch {
      return;
    }
    if (d === t.made) return;
  }
}

export async function cmdMount(poolArg: string | undefined, mntArg: string | undefined, opts: MountCliOptions): Promise<number> {
  if (poolArg !== undefined && opts.readyFd === undefined && !existsSync(path.resolve(poolArg)) &&
      (opts.o ?? []).some(v => v.split(',').some(w => w.trim() === 'nofail'))) {
    // fstab's nofail: a missing pool is no error, and quiet (mount -a exits 0, as for ext4 on a missing device).
    log('nofail: %s does not exist, nothing mounted', poolArg);
    return EXIT.OK;
  }
  const t = await prepare(poolArg, mntArg, opts);
  if (opts.foreground || opts.readyFd !== undefined) {
    let readyFd: number | undefined;
    if (opts.readyFd !== undefined) {
      readyFd = Number(opts.readyFd);
      if (!Number.isInteger(readyFd) || readyFd < 0) throw new CliError(`bad --ready-fd '${opts.readyFd}'`, EXIT.USAGE);
    }
    // Loaded only here: the FUSE binding is a native module the other commands do not need.
    const { runDaemon } = await import('../fuse/daemon.js');
    const code = await runDaemon({ pool: t.pool, mountpoint: t.mountpoint, options: t.options, cli: invocation(), ...(readyFd !== undefined ? { readyFd } : {}) });
    if (code !== EXIT.OK) removeMade(t);
    return code;
  }
  try {
    return await spawnDaemon(t, opts.o ?? []);
  } catch (err) {
    removeMade(t);
    throw err;
  }
}

/** The log's text written since `from`, last lines only. */
function logTail(file: string, from: number, maxBytes = 8192): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const start = Math.max(from, size - maxBytes);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      return buf.toString('utf8').trim();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** From this process (never the daemon's): the mount point now shows the FUSE file system. */
async function checkMounted(mnt: string): Promise<void> {
  const [st, parent] = await withTimeout(Promise.all([stat(mnt), stat(path.dirname(mnt))]), STAT_TIMEOUT_MS, `stat ${mnt}`);
  if (mnt !== '/' && st.dev === parent.dev) throw new Error(`${mnt} does not show a mounted file system`);
  if (!daxvmMountAt(mnt)) throw new Error(`${mnt} is not listed as a ${FSTYPE} mount`);
}

async function spawnDaemon(t: Target, rawOptions: string[]): Promise<number> {
  ensureRuntimeDir();
  const logPath = logFilePath(t.mountpoint);
  const logFd = openSync(logPath, 'a', 0o644);
  const from = fstatSync(logFd).size;
  writeSync(logFd, `--- ${new Date().toISOString()} daxvm mount ${t.pool} ${t.mountpoint}\n`);
  const args = [mainScript(), 'mount', t.pool, t.mountpoint, '--foreground', '--ready-fd', '3',
    ...rawOptions.flatMap(o => ['-o', o])];
  log('spawning %s %o (log %s)', process.execPath, [...DAEMON_NODE_FLAGS, ...args], logPath);
  // cwd '/': a daemon must not keep the caller's directory (and its file system) busy.
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...args], { detached: true, cwd: '/', stdio: ['ignore', logFd, logFd, 'pipe'] });
  closeSync(logFd);
  const pipe = child.stdio[3] as Readable;

  const outcome = await new Promise<DaemonMessage | { event: 'exit'; code: number | null; signal: string | null } | { event: 'timeout' }>(resolve => {
    let text = '';
    const timer = setTimeout(() => resolve({ event: 'timeout' }), READY_TIMEOUT_MS);
    const settle = (v: Parameters<typeof resolve>[0]) => { clearTimeout(timer); resolve(v); };
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      text += chunk;
      const m = decodeMessages(text)[0];
      if (m) settle(m);
    });
    pipe.on('error', () => { /* the exit event tells */ });
    child.on('exit', (code, signal) => settle({ event: 'exit', code, signal }));
  });
  pipe.destroy();

  const failed = (message: string, hint?: string, code: number = EXIT.MOUNT_FAILURE): never => {
    const tail = logTail(logPath, from);
    throw new CliError(message + (tail ? `\n--- daemon log (${logPath}):\n${tail}` : ''), code, hint);
  };

  switch (outcome.event) {
    case 'error':
      throw new CliError(outcome.message, outcome.exitCode || EXIT.MOUNT_FAILURE, outcome.hint);
    case 'exit':
      return failed(`the daxvm daemon exited (${outcome.signal ?? `code ${outcome.code}`}) before the mount was ready`);
    case 'timeout':
      child.kill('SIGTERM');
      return failed(`the daxvm daemon did not get ready within ${READY_TIMEOUT_MS / 1000} s; stopped it`);
    case 'ready':
      break;
  }
  try {
    await checkMounted(t.mountpoint);
  } catch (err) {
    child.kill('SIGTERM');
    return failed(`the mount did not come up: ${(err as Error).message}`);
  }
  child.unref();
  log('mounted %s on %s, daemon pid %d', t.pool, t.mountpoint, child.pid);
  return EXIT.OK;
}
