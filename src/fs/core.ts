/**
 * The mounted file system's state and the mechanisms every operation shares:
 * inode and directory access, saving, freeing, and group commit.
 *
 * Group commit (as ext4's commit=): operations change the metadata cache;
 * the running transaction is committed on fsync, when it grows past a
 * quarter of the journal, when the commit interval expires, at sync and at
 * unmount. Each commit is a persist barrier for the file data stored since
 * the last one (data first, as ext4's data=ordered), one for the journal,
 * then the home locations are written. A commit whose new data is small
 * vouches for it instead (vouch.ts): one barrier for data and journal.
 */
import createDebug from 'debug';
import type { Pool } from '../media/pool.js';
import { FsError, S_IFDIR, S_IFLNK, S_IFREG, type BlockLeases, type FsObserver } from './api.js';
import type { BlockAllocator, Run } from './alloc.js';
import { Directory } from './dir.js';
import { hostLow } from './host-space.js';
import type { Inode } from './inode.js';
import { INODE_FLAG_INLINE_SYMLINK } from '../core/format/inode.js';
import type { InodeTable } from './inodes.js';
import type { Journal } from './journal.js';
import { transactionBlocks } from './journal.js';
import { BACKUP_SUPERBLOCK_BLOCK, BLOCK_SIZE, PoolState } from '../core/format/pool.js';
import { encodeSuperblock, INCOMPAT_VOUCHING_JOURNAL, type Superblock } from '../core/format/superblock.js';
import type { MetaStore } from './metastore.js';
import { Zeroer } from './zeroer.js';
import { writeHome } from './home.js';
import { Prewriter } from './prewrite.js';
import { Voucher } from './vouch.js';
import { freeTable, NO_TABLE, syncTable, type NodeStore, type TableRef } from '../ppt/tables.js';

const log = createDebug('daxvm:fs');

/** Below this many free blocks (32 MiB), freed blocks are reclaimed eagerly. */
const LOW_SPACE_BLOCKS = 8192;

/** While blocks are held back for leases, how often to look whether the leases went. */
const LEASE_RECHECK_MS = 1000;

export interface CoreParts {
  pool: Pool;
  sb: Superblock;
  store: MetaStore;
  journal: Journal;
  alloc: BlockAllocator;
  inodes: InodeTable;
  readOnly: boolean;
  commitIntervalMs: number;
  /** Leases on pool blocks held by mappings in other processes (none: nothing is leased). */
  leases?: BlockLeases;
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
  readonly leases: BlockLeases | undefined;
  /** Hears every change of the in-memory state (FileSystem.observe). */
  observer: FsObserver | undefined;
  /** Blocks whose images the journal holds since its last reset. */
  private readonly journaled = new Set<number>();
  private readonly shrunk = new Set<Inode>();
  /** File data was stored since the last barrier. */
  dataDirty = false;
  /**
   * Of which some went where this transaction makes it reachable (new
   * blocks written or zeroed, a move, bytes past the old end of a file):
   * those must be durable before the commit that points at them. Stores
   * that overwrite blocks already reachable need no such order (ext4's
   * data=ordered orders only new blocks): they share the commit's barrier.
   */
  dataOrdered = false;
  private timer: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  stats = { commits: 0, checkpoints: 0, journalBlocksWritten: 0, tablesBuilt: 0, tablesDeleted: 0, blocksZeroedSync: 0 };
  readonly zeroer: Zeroer;
  /** Host extents written ahead of use, after fsyncs (prewrite.ts); enabled by the opener. */
  readonly prewriter: Prewriter;
  /** Commits that vouch for their data, and the guard that keeps vouched bytes until proven. */
  readonly vouch: Voucher;
  /** Page-table nodes live in the metadata store, journaled like every other metadata block. */
  readonly nodeStore: NodeStore;

  constructor(parts: CoreParts) {
    this.pool = parts.pool;
    this.sb = parts.sb;
    this.store = parts.store;
    this.journal = parts.journal;
    this.alloc = parts.alloc;
    this.inodes = parts.inodes;
    this.readOnly = parts.readOnly;
    this.commitIntervalMs = parts.commitIntervalMs;
    this.leases = parts.leases;
    this.zeroer = new Zeroer(this);
    this.prewriter = new Prewriter(this);
    this.vouch = new Voucher(this);
    this.nodeStore = {
      node: (block) => {
        const g = this.sb.geometry;
        if (block < g.dataStart || block >= g.totalBlocks) {
          this.markErrors(block, 'page-table node outside the data area');
          throw new FsError('EIO', `page-table node ${block} lies outside the data area; run daxvm fsck`);
        }
        return this.store.load(block, 'raw', 'page-table node');
      },
      allocNode: () => {
        const block = this.inodes.allocMeta();
        this.store.fresh(block, 'raw');
        return block;
      },
      freeNode: (block) => this.inodes.freeMeta(block),
      dirty: (block) => this.store.markDirty(block, 'raw'),
    };
  }

  tableOf(inode: Inode): TableRef {
    return { root: inode.pptRoot, level: inode.pptLevel, nodes: inode.pptNodes };
  }

  private setTable(inode: Inode, ref: TableRef): void {
    inode.pptRoot = ref.root;
    inode.pptLevel = ref.level;
    inode.pptNodes = ref.nodes;
  }

  /**
   * Keep a regular file's page table in step with its extents after logical
   * blocks [from, to) changed or its size changed; part of the same
   * transaction as the change. The caller saves the inode.
   */
  syncTables(inode: Inode, from: number, to: number): void {
    if (inode.type !== S_IFREG) return;
    if (!this.sb.knobs.pageTablesOn) {
      if (inode.pptRoot) this.dropTable(inode);
      return;
    }
    const before = inode.pptRoot;
    this.setTable(inode, syncTable(this.nodeStore, this.tableOf(inode), inode.extents, inode.size, from, to));
    if (!before && inode.pptRoot) this.stats.tablesBuilt++;
  }

  /** Delete a file's table and free its nodes. */
  dropTable(inode: Inode): void {
    if (!inode.pptRoot) return;
    freeTable(this.nodeStore, this.tableOf(inode));
    this.setTable(inode, NO_TABLE);
    this.stats.tablesDeleted++;
  }

  requireWritable(): void {
    if (this.readOnly) throw new FsError('EROFS', 'the file system is mounted read-only');
  }

  inode(ino: number): Inode {
    const known = this.inodes.cachedInode(ino);
    if (known) return known;
    const inode = this.inodes.get(ino);
    this.observer?.inodeChanged(ino); // loaded: known from now on
    return inode;
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
      this.observer?.dirLoaded(inode.ino);
    }
    return inode.dir;
  }

  save(inode: Inode): void {
    this.inodes.save(inode);
    this.observer?.inodeChanged(inode.ino);
  }

  /** A directory entry was added or repointed (ops-names tells the observer). */
  named(parent: number, name: string, ino: number): void {
    this.observer?.nameAdded(parent, name, ino);
  }

  unnamed(parent: number, name: string): void {
    this.observer?.nameRemoved(parent, name);
  }

  noteShrunk(inode: Inode): void {
    inode.shrunkSinceCommit = true;
    this.shrunk.add(inode);
  }

  /**
   * Drop blocks of `inode`. An open handle does not hold them (as ext4): they
   * are reusable once this transaction is durable, unless a lease covers
   * them (the allocator holds those back; see BlockLeases in api.ts).
   */
  dropBlocks(inode: Inode, runs: Run[]): void {
    for (const run of runs) {
      inode.blocks -= run.count;
      if (inode.type === S_IFDIR || inode.type === S_IFLNK) {
        for (let b = run.start; b < run.start + run.count; b++) this.store.forget(b);
      }
      this.alloc.free(run);
    }
  }

  /** Does a live lease cover any of these pool blocks now? (Nothing is leased without a lease table.) */
  leased(runs: Run[]): boolean {
    if (!this.leases || runs.length === 0) return false;
    const live = this.leases.live();
    return runs.some((r) => live.some((l) => l.start < r.start + r.count && r.start < l.start + l.count));
  }

  /** Free the inode and everything it owns once no name and no handle holds it. */
  reapIfUnused(inode: Inode): void {
    if (inode.nlink > 0 || inode.openCount > 0) return;
    this.dropTable(inode);
    if (!(inode.flags & INODE_FLAG_INLINE_SYMLINK)) this.dropBlocks(inode, inode.extents.truncate(0));
    if (inode.xattrBlock !== 0) this.inodes.freeMeta(inode.xattrBlock);
    inode.xattrBlock = 0;
    inode.dir = null;
    this.inodes.release(inode);
    this.observer?.inodeFreed(inode.ino);
  }

  /**
   * Before an operation: when free space runs low while freed blocks wait
   * for a commit or a journal reset, commit and reset now, at an operation
   * boundary, so the operation finds them.
   */
  reclaimIfLow(): void {
    if (this.readOnly || this.alloc.pending === 0) return;
    const low = (this.alloc.reserve * 2 + LOW_SPACE_BLOCKS) * BLOCK_SIZE;
    if (this.alloc.freeNow * BLOCK_SIZE > low && !hostLow(this.pool, low)) return; // a sparse pool's host counts too
    this.commit();
    this.checkpoint();
    this.alloc.recheckLeases();
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
    const lost = this.prewriter.takeBarrierError();
    if (lost) throw new FsError('EIO', `a background barrier of the pool failed (${lost.message}); stores may not have reached the host`);
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.store.dirtyCount === 0) {
      // A vouching commit not yet proven: an fsync (the library's too, see BlockLeases.vouch) confirms it.
      if (this.vouch.pending) this.vouch.confirm();
      else if (this.dataDirty) this.pool.persistAll();
      this.vouch.forget();
      this.dataDirty = false;
      this.dataOrdered = false;
      return;
    }
    if (!this.journal.fits(this.store.dirtyCount)) this.checkpoint();
    if (!this.journal.fits(this.store.dirtyCount)) {
      throw new FsError('EIO', `transaction of ${this.store.dirtyCount} blocks exceeds the journal`);
    }
    this.inodes.encodeSaved();
    const images = this.store.takeDirty();
    this.sb.lastWriteMs = Date.now();
    // Stores reach the media in any order until a barrier: data in new
    // blocks, and their zeroing, must be durable before a commit block that
    // points at them can be (as ext4's data=ordered), or the commit vouches
    // for them (vouch.ts). Overwrites need neither: an fsync after them is
    // one fdatasync of the pool.
    const vouches = this.dataOrdered ? this.vouch.prepare(transactionBlocks(images.length)) : [];
    if (vouches === null) this.pool.persistAll();
    this.journal.append(images, vouches ?? []);
    this.pool.persistAll();
    this.vouch.committed(vouches);
    this.vouch.forget();
    writeHome(this.pool, this.sb.geometry, images);
    for (const [block] of images) this.journaled.add(block);
    this.alloc.committed((b) => this.journaled.has(b));
    this.watchLeases();
    this.zeroer.kick();
    for (const inode of this.shrunk) inode.shrunkSinceCommit = false;
    this.shrunk.clear();
    this.dataDirty = false;
    this.dataOrdered = false;
    this.stats.commits++;
    this.stats.journalBlocksWritten += transactionBlocks(images.length);
    log('commit %d blocks, journal at %d/%d', images.length, this.journal.pos, this.journal.capacity);
  }

  /** While blocks are held for leases, look again every second (a mapping's end is not a request); at mount too. */
  watchLeases(): void {
    if (this.leaseTimer || this.alloc.leaseHeld === 0) return;
    this.leaseTimer = setTimeout(() => {
      this.leaseTimer = null;
      try {
        this.alloc.recheckLeases();
      } catch (err) {
        log('lease recheck failed: %O', err);
      }
      this.watchLeases();
    }, LEASE_RECHECK_MS);
    this.leaseTimer.unref();
  }

  /** Make every home write durable, then start the journal afresh. */
  checkpoint(): void {
    this.pool.persistAll();
    this.sb.journalSeq = this.journal.nextSeq;
    this.writeSuperblock();
    this.journal.pos = 0;
    this.journaled.clear();
    this.alloc.journalReset();
    this.vouch.proven();
    this.watchLeases();
    this.zeroer.kick();
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
      this.sb.incompatFeatures &= ~INCOMPAT_VOUCHING_JOURNAL; // the journal is empty: an older daxvm may open it
      this.writeSuperblock(true);
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    this.leaseTimer = null;
    this.zeroer.stop();
    this.prewriter.stop();
    this.vouch.stop();
    this.pool.close();
  }
}
