/**
 * What the daemon shares with the library's processes through memory
 * (docs/format.md, "Shared memory"): the lease table, which replaces the
 * open file handle as the lease on mapped blocks, and the namespace, from
 * which they resolve paths and map files with no request to the daemon.
 * Started by one call in the daemon before the pool is opened (leases are
 * honoured from the start); the namespace once the file system is open;
 * both closed after the file system is.
 */
import createDebug from 'debug';
import type { BlockLeases, FileSystemApi } from '../../fs/api.js';
import { LeaseTable, poolIdentity, type PoolIdentity } from './lease-table.js';
import { NsPublisher } from './namespace.js';
import { native } from './native.js';
import type { MountFacts } from './ns-region.js';

const log = createDebug('daxvm:fuse');

export type { MountFacts } from './ns-region.js';

export class SharedState {
  private ns: NsPublisher | undefined;

  private constructor(readonly pool: PoolIdentity | undefined, readonly leases: LeaseTable | undefined, readonly problem: string | undefined) {}

  /** The pool's shared files; a failure is logged and leaves the mount without them (clients use the mount path). */
  static start(poolPath: string): SharedState {
    let pool: PoolIdentity | undefined;
    try {
      pool = poolIdentity(poolPath);
      return new SharedState(pool, LeaseTable.open(pool), undefined);
    } catch (err) {
      const problem = (err as Error).message;
      process.stderr.write(`daxvm: warning: no lease table, library mappings of the pool fall back to the mount: ${problem}\n`);
      return new SharedState(pool, undefined, problem);
    }
  }

  /** For openFileSystem's options. */
  get blockLeases(): BlockLeases | undefined {
    return this.leases;
  }

  /**
   * Publish the namespace of the open file system (only with a lease table:
   * a mapping made from it needs a lease). A failure leaves clients on the mount path.
   */
  publish(fs: FileSystemApi, mount: MountFacts): void {
    if (!this.pool || !this.leases) return;
    try {
      const ns = NsPublisher.start(this.pool, fs, this.pool.inodeCount, mount);
      this.ns = ns;
      // Whatever a scan may free was published first (docs/format.md, "Leases: the ordering argument").
      this.leases.beforeScan = () => {
        ns.flush();
        native.fence();
      };
      process.once('exit', () => ns.markDead());
    } catch (err) {
      process.stderr.write(`daxvm: warning: no shared namespace, library mappings resolve through the mount: ${(err as Error).message}\n`);
    }
  }

  /** The DRAM the namespace's copies of the page tables take, in KiB. */
  dramKB(): number {
    return this.ns?.dramKB() ?? 0;
  }

  stats(): Record<string, number> {
    return this.ns?.stats() ?? {};
  }

  close(): void {
    try {
      this.ns?.close();
    } catch (err) {
      log('closing the namespace: %O', err);
    }
    this.ns = undefined;
    try {
      this.leases?.close();
    } catch (err) {
      log('closing the lease table: %O', err);
    }
  }
}
