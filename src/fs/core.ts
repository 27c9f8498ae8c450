/**
 * The mounted file system's state and the mechanisms every operation shares:
 * inode and directory access, saving, freeing, and group commit.
 *
 * Group commit (as ext4's commit=): operations change the metadata cache;
 * the running transaction is committed on fsync, when it grows past a
 * quarter of the journal, when the commit interval expires, at sync and at
 * unmount. Each commit is one persist barrier (data and journal together),
 * then the home locations are written.
 */
import createDebug from 'debug';
import type { Pool } from '../media/pool.js';
import { FsError, S_IFDIR, S_IFLNK } from './api.js';
import type { BlockAllocator, Run } from './alloc.js';
import { Directory } from './dir.js';
import type { Inode } from './inode.js';
import { INODE_FLAG_INLINE_SYMLINK } from './inode.js';
import type { InodeTable } from './inodes.js';
import type { Journal } from './journal.js';
import { transactionBlocks } from './journal.js';
import { BACKUP_SUPERBLOCK_BLOCK, BLOCK_SIZE, encodeSuperblock, PoolState, type Superblock } from './layout.js';
import type { MetaStore } from './metastore.js';

const log = createDebug('daxvm:fs');

/** Below this many free blocks (32 MiB), freed blocks are reclaimed eagerly. */
const LOW_SPACE_BLOCKS = 8192;

export interface CoreParts {
  pool: Pool;
  sb: Superblock;
  store: MetaStore;
  journal: Journal;
  alloc: BlockAllocator;
  inodes: InodeTable;
  readOnly: boolean;
  commitIntervalMs: number;
}

export class FsCore {
  readonly pool: Pool;
  sb: Superblock;
  readonly store: MetaStore;
  readonly journal: Journal;
  readonly alloc: BlockAllocator;
  readonly inodes: InodeTable;
  readonly readOnly: boolean;
  commitIntervalMs: number;
  /** Blocks whose images the journal holds since its last reset. */
  private readonly journaled = new Set<number>();
  private readonly shrunk = new Set<Inode>();
  /** File data was stored since the last barrier. */
  dataDirty = false;
  private timer: NodeJS.Timeout | null = null;
  stats = { commits: 0, checkpoints: 0, journalBlocksWritten: 0 };

  constructor(parts: CoreParts) {
    this.pool = parts.pool;
    this.sb = parts.sb;
    this.store = parts.store;
    this.journal = parts.journal;
    this.alloc = parts.alloc;
    this.inodes = parts.inodes;
    this.readOnly = parts.readOnly;
    this.commitIntervalMs = parts.commitIntervalMs;
  }

  requireWritable(): void {
    if (this.readOnly) throw new FsError('EROFS', 'the file system is mounted read-only');
  }

  inode(ino: number): Inode {
    return this.inodes.get(ino);
  }

  /** The directory index of `inode` (ENOTDIR for anything else), loaded on first use. */
  dir(inode: Inode): Directory {
    if (inode.type !== S_IFDIR) throw new FsError('ENOTDIR', `inode ${inode.ino} is not a directory`);
    if (!inode.dir) {
      const count = Math.ceil(inode.size / BLOCK_SIZE);
      const blocks: number[] = [];
      for (let i = 0; i < count; i++) {
        const b = inode.extents.lookup(i);
        if (b < 0) throw new FsError('EIO', `directory ${inode.ino} has a hole at block ${i}; run daxvm fsck`);
        blocks.push(b);
      }
      const dir = new Directory(this.store, blocks);
      dir.load();
      inode.dir = dir;
    }
    return inode.dir;
  }

  save(inode: Inode): void {
    this.inodes.save(inode);
  }

  noteShrunk(inode: Inode): void {
    inode.shrunkSinceCommit = true;
    this.shrunk.add(inode);
  }

  /** Drop data blocks of `inode`; held back from reuse while it is open. */
  dropBlocks(inode: Inode, runs: Run[]): void {
    for (const run of runs) {
      inode.blocks -= run.count;
      if (inode.openCount > 0) {
        this.alloc.freeDeferred(run);
        inode.deferredFree.push(run);
      } else if (inode.type === S_IFDIR || inode.type === S_IFLNK) {
        for (let b = run.start; b < run.start + run.count; b++) this.store.forget(b);
        this.alloc.free(run);
      } else {
        this.alloc.free(run);
      }
    }
  }

  /** Free the inode and everything it owns once no name and no handle holds it. */
  reapIfUnused(inode: Inode): void {
    if (inode.nlink > 0 || inode.openCount > 0) return;
    for (const run of inode.deferredFree) this.alloc.releaseDeferred(run);
    inode.deferredFree = [];
    if (!(inode.flags & INODE_FLAG_INLINE_SYMLINK)) this.dropBlocks(inode, inode.extents.truncate(0));
    if (inode.xattrBlock !== 0) this.inodes.freeMeta(inode.xattrBlock);
    inode.xattrBlock = 0;
    inode.dir = null;
    this.inodes.release(inode);
  }

  /**
   * Before an operation: when free space runs low while freed blocks wait
   * for a commit or a journal reset, commit and reset now, at an operation
   * boundary, so the operation finds them.
   */
  reclaimIfLow(): void {
    if (this.readOnly || this.alloc.pending === 0) return;
    if (this.alloc.freeNow > this.alloc.reserve * 2 + LOW_SPACE_BLOCKS) return;
    this.commit();
    this.checkpoint();
  }

  /** After a mutating operation: commit now if the transaction is large, else soon. */
  afterMutation(): void {
    if (transactionBlocks(this.store.dirtyCount) * 4 > this.journal.capacity) {
      this.commit();
      return;
    }
    if (!this.timer && this.commitIntervalMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        try {
          this.commit();
        } catch (err) {
          log('background commit failed: %O', err);
        }
      }, this.commitIntervalMs);
      this.timer.unref();
    }
  }

  /** Commit the running transaction and make it durable, with the file data stored so far. */
  commit(): void {
    if (this.readOnly) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.store.dirtyCount === 0) {
      if (this.dataDirty) this.pool.persistAll();
      this.dataDirty = false;
      return;
    }
    if (!this.journal.fits(this.store.dirtyCount)) this.checkpoint();
    if (!this.journal.fits(this.store.dirtyCount)) {
      throw new FsError('EIO', `transaction of ${this.store.dirtyCount} blocks exceeds the journal`);
    }
    const images = this.store.takeDirty();
    this.sb.lastWriteMs = Date.now();
    this.journal.append(images);
    this.pool.persistAll();
    for (const [block, image] of images) {
      this.pool.write(block * BLOCK_SIZE, image);
      this.journaled.add(block);
    }
    this.alloc.committed((b) => this.journaled.has(b));
    for (const inode of this.shrunk) inode.shrunkSinceCommit = false;
    this.shrunk.clear();
    this.dataDirty = false;
    this.stats.commits++;
    this.stats.journalBlocksWritten += transactionBlocks(images.length);
    log('commit %d blocks, journal at %d/%d', images.length, this.journal.pos, this.journal.capacity);
  }

  /** Make every home write durable, then start the journal afresh. */
  checkpoint(): void {
    this.pool.persistAll();
    this.sb.journalSeq = this.journal.nextSeq;
    this.writeSuperblock();
    this.journal.pos = 0;
    this.journaled.clear();
    this.alloc.journalReset();
    this.stats.checkpoints++;
  }

  /** Write the primary superblock (and the backup when asked) and persist it. */
  writeSuperblock(backup = false): void {
    const image = encodeSuperblock(this.sb);
    this.pool.write(0, image);
    if (backup) this.pool.write(BACKUP_SUPERBLOCK_BLOCK * BLOCK_SIZE, image);
    this.pool.persist(0, (backup ? 2 : 1) * BLOCK_SIZE);
  }

  /** Record that corruption was found: the pool needs fsck before its next mount. */
  markErrors(block: number, what: string): void {
    log('corruption: %s in block %d', what, block);
    if (this.readOnly || this.sb.state === PoolState.Errors) return;
    this.sb.state = PoolState.Errors;
    try {
      this.writeSuperblock();
    } catch (err) {
      log('could not record the error state: %O', err);
    }
  }

  /** Commit, checkpoint, mark clean, release the pool. */
  close(): void {
    if (!this.readOnly) {
      this.commit();
      this.checkpoint();
      if (this.sb.state !== PoolState.Errors) this.sb.state = PoolState.Clean;
      this.writeSuperblock(true);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pool.close();
  }
}
