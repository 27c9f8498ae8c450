/**
 * A temporary sparse pool mounted by a CHILD daemon, for benchmarks: the
 * bench process only talks to it through the mount (a daemon must never serve
 * a synchronous call from its own process). `close()` unmounts cleanly;
 * `kill()` is the last resort, synchronous, safe from an 'exit' hook or a
 * signal handler: it kills the daemon, lazily unmounts and removes the pool.
 * Every live TempMount is killed when the process exits.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMounts, topMountAt } from '../fuse/mountinfo.js';

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');

const fstypeAt = (mnt: string): string | undefined => topMountAt(mnt, readMounts())?.fstype;

const live = new Set<TempMount>();
let hooked = false;

export class TempMount {
  private constructor(
    /** The temporary directory holding the pool, the mount point and the daemon's log. */
    readonly base: string,
    readonly pool: string,
    readonly mnt: string,
    private readonly child: ChildProcess,
  ) {}

  /** mkfs a sparse pool of `size` (e.g. '2G') in a new directory under hostDir, mount it, wait until it is. */
  static async create(hostDir: string, size: string, prefix = 'daxvm-bench-'): Promise<TempMount> {
    const base = mkdtempSync(join(hostDir, prefix));
    const pool = join(base, 'pool.daxvm');
    const mnt = join(base, 'mnt');
    mkdirSync(mnt);
    const mk = spawnSync(process.execPath, [CLI, 'mkfs', pool, '--size', size], { encoding: 'utf8' });
    if (mk.status !== 0) {
      rmSync(base, { recursive: true, force: true });
      throw new Error(`mkfs of a ${size} pool in ${hostDir} failed: ${mk.stderr.trim()}`);
    }
    // A log file, not a pipe: a daemon blocked on a full pipe would hang the bench.
    const logFd = openSync(join(base, 'daemon.log'), 'a');
    const child = spawn(process.execPath, [CLI, 'mount', pool, mnt, '-f'], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    const m = new TempMount(base, pool, mnt, child);
    live.add(m);
    if (!hooked) {
      hooked = true;
      process.on('exit', () => { for (const x of [...live]) x.kill(); });
    }
    const deadline = Date.now() + 30_000;
    while (fstypeAt(mnt) !== 'fuse.daxvm') {
      if (child.exitCode !== null || Date.now() > deadline) {
        const log = readFileSync(join(base, 'daemon.log'), 'utf8');
        m.kill();
        throw new Error(`mount of ${pool} failed:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return m;
  }

  /** The daemon's pid (it runs in the foreground as our child). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** `daxvm umount` (the daemon commits and exits), then the directory goes. */
  async close(): Promise<void> {
    const exited = new Promise((r) => (this.child.exitCode !== null ? r(null) : this.child.once('exit', r)));
    // Not spawnSync: the daemon is our child, and `daxvm umount` waits for it to
    // be gone, which takes our event loop reaping it.
    await new Promise((r) => spawn(process.execPath, [CLI, 'umount', this.mnt], { stdio: 'ignore' }).once('exit', r));
    await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000).unref())]);
    this.kill();
  }

  /** Last resort, synchronous: kill the daemon, lazy-unmount, remove the pool. Idempotent. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    if (fstypeAt(this.mnt)) spawnSync('fusermount', ['-uz', this.mnt], { stdio: 'ignore' });
    rmSync(this.base, { recursive: true, force: true });
    live.delete(this);
  }
}
