/**
 * What the daemon shares with the library's processes through memory
 * (docs/format.md, "Shared memory"): the lease table, which replaces the
 * open file handle as the lease on mapped blocks. Started by one call in
 * the daemon before the pool is opened (leases are honoured from the
 * start), closed after the file system is.
 */
import createDebug from 'debug';
import type { BlockLeases } from '../../fs/api.js';
import { LeaseTable, poolIdentity } from './lease-table.js';

const log = createDebug('daxvm:fuse');

export class SharedState {
  private constructor(readonly leases: LeaseTable | undefined, readonly problem: string | undefined) {}

  /** The pool's shared files; a failure is logged and leaves the mount without them (clients use the mount path). */
  static start(poolPath: string): SharedState {
    try {
      return new SharedState(LeaseTable.open(poolIdentity(poolPath)), undefined);
    } catch (err) {
      const problem = (err as Error).message;
      process.stderr.write(`daxvm: no lease table, library mappings of the pool fall back to the mount: ${problem}\n`);
      return new SharedState(undefined, problem);
    }
  }

  /** For openFileSystem's options. */
  get blockLeases(): BlockLeases | undefined {
    return this.leases;
  }

  close(): void {
    try {
      this.leases?.close();
    } catch (err) {
      log('closing the lease table: %O', err);
    }
  }
}
