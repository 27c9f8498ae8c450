/**
 * Opening a pool: validate everything before writing anything, replay the
 * journal, reclaim orphans after a crash, mark the pool mounted.
 *
 * A pool that is not ours, truncated, of a newer format, with a corrupt
 * superblock or corrupt bitmaps is refused with a PoolError that names the
 * problem and the fix; nothing is written to it.
 */
import fs from 'node:fs';
import createDebug from 'debug';
import { Pool } from '../media/pool.js';
import { FsError, S_IFDIR, S_IFREG, type BlockLeases } from './api.js';
import { BlockAllocator } from './alloc.js';
import { MediaBitmap, type Bits } from './bitmap.js';
import { crc32c } from '../core/format/checksum.js';
import { FsCore } from './core.js';
import { backOnHost } from './host-space.js';
import { PoolError } from '../core/errors.js';
import { FileSystem } from './filesystem.js';
import { InodeTable } from './inodes.js';
import { Journal, readJournal } from './journal.js';
import { BACKUP_SUPERBLOCK_BLOCK, BLOCK_SIZE, INODE_SIZE, INODES_PER_BLOCK, PoolState, type Geometry } from '../core/format/pool.js';
import { decodeSuperblock, INCOMPAT_VOUCHING_JOURNAL, type Superblock } from '../core/format/superblock.js';
import { MetaStore } from './metastore.js';

const log = createDebug('daxvm:fs');

export interface OpenOptions {
  readOnly?: boolean;
  /** Group commit interval; ext4's default is 5 s, ours 1 s. */
  commitIntervalMs?: number;
  /** Skip the lock (info on a mounted pool reads a possibly stale picture). */
  noLock?: boolean;
  /** fsck: corrupt bitmap blocks read as free (they are rebuilt). */
  ignoreBitmaps?: boolean;
  /** fsck: open even when the root inode is unusable (fsck makes a new one). */
  anyRoot?: boolean;
  /**
   * Leases on pool blocks (the mount's shared lease table): honoured from
   * the start, before recovery frees anything (a daemon that died may have
   * held blocks back for them).
   */
  leases?: BlockLeases;
  /**
   * Keep the host's extents written ahead of use after each fsync (the
   * mount's daemon: prewrite.ts), so an fsync's fdatasync carries no host
   * extent conversion.
   */
  prewrite?: boolean;
}

/** Read and check the superblock with plain file reads (before mapping or locking). */
export function readSuperblock(poolPath: string): Superblock {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO given as the pool must be refused below, not wait for a writer (no effect on a regular file).
    fd = fs.openSync(poolPath, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PoolError('ENOENT', `pool ${poolPath} does not exist`, { hint: `create it with: daxvm mkfs ${poolPath} --size 4G`, path: poolPath });
    throw new PoolError('ENOENT', `cannot open pool ${poolPath}: ${(err as Error).message}`, { hint: 'check the path and its permissions', path: poolPath });
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      throw new PoolError('EINVAL', `${poolPath} is ${fileKind(st)}, not a pool file`, { hint: 'a pool is a regular file on the host; make one with: daxvm mkfs POOL --size 4G', path: poolPath });
    }
    const size = st.size;
    const head = Buffer.alloc(BLOCK_SIZE);
    const got = fs.readSync(fd, head, 0, BLOCK_SIZE, 0);
    const decoded = decodeSuperblock(got === BLOCK_SIZE ? head : Buffer.alloc(BLOCK_SIZE));
    // A damaged primary in front of a good backup is a repair, never a new mkfs.
    const repair = `run: daxvm fsck --repair ${poolPath} (it restores the superblock from its backup)`;
    if (!decoded.ok) {
      switch (decoded.problem) {
        case 'not-ours':
          if (goodBackup(fd, size)) {
            throw new PoolError('ENOTPOOL', `${poolPath}: the primary superblock is damaged (${decoded.detail}); the backup superblock is good`, { hint: repair, repairable: true });
          }
          throw new PoolError('ENOTPOOL', `${poolPath} is not a daxvm pool (${decoded.detail})`, { hint: `check the path; to make it a pool, destroying its contents: daxvm mkfs --force ${poolPath}`, path: poolPath });
        case 'newer-format':
          throw new PoolError('EFORMAT', `${poolPath} has a newer pool format: ${decoded.detail}`, { hint: 'upgrade daxvm to use this pool (this version can neither mount nor fsck it)', path: poolPath });
        default:
          throw new PoolError('ECORRUPT', `${poolPath}: corrupt superblock (${decoded.detail})`, { hint: repair });
      }
    }
    const want = decoded.sb.geometry.totalBlocks * BLOCK_SIZE;
    if (size < want) {
      throw new PoolError('ETRUNCATED', `${poolPath} is truncated: ${size} bytes, its superblock says ${want}`, { hint: goodBackup(fd, size) ? `the backup superblock fits the file: ${repair}` : `restore the pool file to its full size (truncate -s ${want} would keep what is left; then run daxvm fsck ${poolPath})` });
    }
    return decoded.sb;
  } finally {
    fs.closeSync(fd);
  }
}

/** Why the pool file's superblock is refused (not a pool, damaged, truncated, newer...), or undefined when it is sound. */
export function superblockRefusal(poolPath: string): PoolError | undefined {
  try {
    readSuperblock(poolPath);
    return undefined;
  } catch (err) {
    if (err instanceof PoolError) return err;
    throw err;
  }
}

/** The refusal says the file is no daxvm pool at all (nothing fsck --repair could mend). */
export const notAPool = (refusal: PoolError | undefined): boolean => refusal?.code === 'ENOTPOOL' && !refusal.repairable;

/** "a directory", "a FIFO"...: what a path that is not a regular file is. */
export function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

/** The backup superblock checks out and fits the file: fsck --repair can restore the primary from it. */
function goodBackup(fd: number, size: number): boolean {
  const image = Buffer.alloc(BLOCK_SIZE);
  if (fs.readSync(fd, image, 0, BLOCK_SIZE, BACKUP_SUPERBLOCK_BLOCK * BLOCK_SIZE) !== BLOCK_SIZE) return false;
  const backup = decodeSuperblock(image);
  return backup.ok && backup.sb.geometry.totalBlocks * BLOCK_SIZE <= size;
}

/** Open the pool's structures (no mount-state changes): used by mount, fsck and info. */
export interface OpenedCore {
  core: FsCore;
  /** Transactions to replay (their images: replayImages; the journal goes on at replayNextSeq). */
  replayed: number;
  replayNextSeq: number;
  replayImages: Map<number, Buffer>;
  /** The last transaction was not applied: the pool does not hold the data it vouches for. */
  replayDiscarded?: { seq: number; why: string };
}

export function openCore(poolPath: string, opts: OpenOptions = {}): OpenedCore {
  const sb = readSuperblock(poolPath);
  const readOnly = opts.readOnly ?? false;
  let pool: Pool;
  try {
    pool = Pool.open(poolPath, { readOnly, lock: opts.noLock ? 'none' : undefined });
  } catch (err) {
    if (err instanceof PoolError && err.code === 'ELOCKED' && err.hint === undefined) {
      throw new PoolError('ELOCKED', `pool ${poolPath} is in use (mounted, or being checked)`, { hint: 'unmount it first: daxvm umount MOUNTPOINT', path: poolPath });
    }
    throw err;
  }
  try {
    const g = sb.geometry;
    let core: FsCore | null = null;
    const store = new MetaStore(pool, (block, what) => core?.markErrors(block, what));
    const replay = readJournal(pool, g, sb.journalSeq);
    for (const [block, image] of replay.images) store.preload(block, image);
    const blockBits = new MediaBitmap(store, g.blockBitmapStart, g.blockBitmapBlocks, g.totalBlocks, 'block bitmap');
    const inodeBits = new MediaBitmap(store, g.inodeBitmapStart, g.inodeBitmapBlocks, g.inodeCount, 'inode bitmap');
    const used = asPoolError(poolPath, () => blockBits.load(opts.ignoreBitmaps));
    const usedInodes = asPoolError(poolPath, () => inodeBits.load(opts.ignoreBitmaps));
    // fsck with a corrupt inode bitmap: every record that decodes is taken as in use (the walk rebuilds the map).
    if (inodeBits.replaced) markRecordsInUse(store, g, usedInodes);
    const alloc = new BlockAllocator(g, used, blockBits);
    backOnHost(pool, used, g, alloc); // a sparse pool: host blocks before any store (issue 12.2)
    if (opts.leases) {
      const adopted = alloc.useLeases(opts.leases);
      if (adopted) log('%d free block(s) held back for live leases', adopted);
    }
    const inodes = new InodeTable(store, g, usedInodes, inodeBits, alloc);
    const journal = new Journal(pool, g, replay.nextSeq);
    core = new FsCore({
      pool, sb, store, journal, alloc, inodes, readOnly, commitIntervalMs: opts.commitIntervalMs ?? 1000,
      ...(opts.leases ? { leases: opts.leases } : {}),
    });
    const root = opts.anyRoot ? null : asPoolError(poolPath, () => core!.inode(sb.rootIno));
    if (root && root.type !== S_IFDIR) throw new PoolError('ECORRUPT', `${poolPath}: the root inode is not a directory`, { hint: `run: daxvm fsck --repair ${poolPath}`, path: poolPath });
    if (replay.discarded) log('journal transaction %d not applied: %s', replay.discarded.seq, replay.discarded.why);
    return {
      core, replayed: replay.transactions, replayNextSeq: replay.nextSeq, replayImages: replay.images,
      ...(replay.discarded ? { replayDiscarded: replay.discarded } : {}),
    };
  } catch (err) {
    pool.close();
    throw err;
  }
}

function markRecordsInUse(store: MetaStore, g: Geometry, used: Bits): void {
  used.set(0, true);
  for (let ino = 1; ino < g.inodeCount; ino++) {
    const image = store.load(g.inodeTableStart + Math.floor(ino / INODES_PER_BLOCK), 'raw', 'inode table');
    const rec = image.subarray((ino % INODES_PER_BLOCK) * INODE_SIZE, (ino % INODES_PER_BLOCK + 1) * INODE_SIZE);
    if (rec.readUInt32LE(0) !== 0 && rec.readUInt32LE(INODE_SIZE - 4) === crc32c(rec.subarray(0, INODE_SIZE - 4))) used.set(ino, true);
  }
}

function asPoolError<T>(poolPath: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof FsError) throw new PoolError('ECORRUPT', `${poolPath}: ${err.message.replace(/^EIO: /, '')}`, { hint: `run: daxvm fsck --repair ${poolPath}`, path: poolPath });
    throw err;
  }
}

/** Write replayed journal images home and move the journal past them. */
export function applyReplay(core: FsCore, images: Map<number, Buffer>, nextSeq: number): void {
  for (const [block, image] of images) core.pool.write(block * BLOCK_SIZE, image);
  core.pool.persistAll();
  core.sb.journalSeq = nextSeq;
  core.writeSuperblock();
}

/** Open a pool for use: recovery, orphan reclaim, mounted state. */
export function openFileSystem(poolPath: string, opts: OpenOptions = {}): FileSystem {
  const sb = readSuperblock(poolPath);
  if (sb.state === PoolState.Errors) {
    throw new PoolError('ENEEDSFSCK', `${poolPath} has recorded errors (corruption was found while it was in use)`, { hint: `run: daxvm fsck --repair ${poolPath}`, path: poolPath });
  }
  const { core, replayed, replayNextSeq, replayImages, replayDiscarded } = openCore(poolPath, opts);
  try {
    if (core.readOnly) return new FileSystem(core);
    const crashed = core.sb.state !== PoolState.Clean;
    if (replayed > 0 || replayDiscarded) {
      log('replaying %d journal transaction(s) of %s', replayed, poolPath);
      applyReplay(core, replayImages, replayNextSeq);
    }
    if (crashed) reclaimOrphans(core);
    core.sb.state = PoolState.Mounted;
    // From now on the journal may hold commits that vouch for their data (vouch.ts): an older daxvm must not replay it.
    core.sb.incompatFeatures |= INCOMPAT_VOUCHING_JOURNAL;
    core.sb.mountCount = (core.sb.mountCount + 1) >>> 0; // a u32 on media: it wraps
    core.sb.lastMountMs = Date.now();
    core.commit();
    core.writeSuperblock();
    // Replay wrote home and moved the superblock past what it applied: no commit of a daemon before us is
    // still vouched for, and clients may store into the blocks it published (docs/format.md, "The lease table").
    core.leases?.unvouch();
    core.watchLeases(); // blocks held for adopted leases come back once those go, with no commit needed first
    core.zeroer.configure(core.sb.knobs.zerooutBlocks);
    core.prewriter.enabled = opts.prewrite ?? false;
    return new FileSystem(core);
  } catch (err) {
    core.pool.close();
    throw err;
  }
}

/**
 * After a crash: files unlinked while open have no name left; free them.
 * And finish a page-table build or deletion that the crash interrupted
 * (the knob is persisted first, the tables follow in later transactions).
 */
function reclaimOrphans(core: FsCore): void {
  let reclaimed = 0;
  for (const ino of [...core.inodes.inUse()]) {
    try {
      const inode = core.inode(ino);
      if (inode.nlink === 0) {
        core.reapIfUnused(inode);
        reclaimed++;
      } else if (core.sb.knobs.pageTablesOn && inode.type === S_IFREG && !inode.pptRoot && inode.extents.length) {
        core.syncTables(inode, 0, Math.ceil(inode.size / BLOCK_SIZE));
        core.save(inode);
        core.afterMutation();
      } else if (!core.sb.knobs.pageTablesOn && inode.pptRoot) {
        core.dropTable(inode);
        core.save(inode);
        core.afterMutation();
      }
    } catch (err) {
      log('orphan scan: inode %d unreadable: %s', ino, (err as Error).message);
    }
  }
  if (reclaimed) log('reclaimed %d orphan inode(s)', reclaimed);
}
