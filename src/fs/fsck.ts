/**
 * fsck: check every invariant of a pool, and with `repair` fix what can be
 * fixed. Exit codes as e2fsck: 0 clean, 1 corrected, 4 left uncorrected,
 * 8 operational error.
 *
 * Passes: superblock (primary, else backup), journal replay, then a walk of
 * the tree from the root checking inodes, extents, directory entries and
 * link counts while claiming every block; then unreachable inodes (orphans
 * are freed, others reconnected under /lost+found, a directory with its
 * whole subtree); then both bitmaps against what the walk found.
 *
 * Repair never gives up on damage it can get past: a root that cannot be
 * used is made anew (what it held goes to lost+found), a directory block
 * that cannot be parsed keeps the records that still make sense, blocks
 * two owners claim stay with the first one walked, extended attributes
 * that cannot be read are dropped, a corrupt bitmap is rebuilt (the inode
 * bitmap from the records of the inode table). Until the walk has claimed
 * everything, every block that any inode record refers to is kept from the
 * allocator, so a repair that allocates cannot hand out a block in use.
 *
 * The passes live beside this file: fsck-superblock.ts, fsck-blocks.ts
 * (blocks, extended attributes, bitmaps), fsck-tables.ts (page tables);
 * this one runs them and walks the tree (fsck-context.ts: what they share).
 */
import { FsError, S_IFDIR, S_IFLNK, S_IFREG } from './api.js';
import type { Bits } from './bitmap.js';
import { showName } from './bytestr.js';
import type { FsCore } from './core.js';
import { salvageDirBlock } from './dir.js';
import { BlockCheck } from './fsck-blocks.js';
import { FsckContext } from './fsck-context.js';
import { checkSuperblock, openTolerant } from './fsck-superblock.js';
import { INCOMPAT_VOUCHING_JOURNAL } from '../core/format/superblock.js';
import { TableCheck } from './fsck-tables.js';
import type { Inode } from './inode.js';
import { applyReplay } from './open.js';
import * as names from './ops-names.js';
import { PoolError } from '../core/errors.js';
import { BLOCK_SIZE, PoolState } from '../core/format/pool.js';

export interface FsckProblem {
  kind: string;
  message: string;
  fixed: boolean;
}

export interface FsckReport {
  exitCode: 0 | 1 | 4 | 8;
  problems: FsckProblem[];
  summary: { inodes: number; dirs: number; files: number; blocksUsed: number; blocksFree: number; journalTransactionsReplayed: number; journalTransactionsDiscarded: number };
  error?: string;
}

export interface FsckOptions {
  repair?: boolean;
  onProgress?: (done: number, total: number) => void;
}

const LOST_FOUND = 'lost+found';

export function fsck(poolPath: string, opts: FsckOptions = {}): FsckReport {
  const repair = opts.repair ?? false;
  const problems: FsckProblem[] = [];
  const report = (kind: string, message: string, fixed: boolean): void => {
    problems.push({ kind, message, fixed });
  };
  const summary = { inodes: 0, dirs: 0, files: 0, blocksUsed: 0, blocksFree: 0, journalTransactionsReplayed: 0, journalTransactionsDiscarded: 0 };
  try {
    if (!checkSuperblock(poolPath, repair, report)) {
      // The rest cannot be checked until the primary superblock is restored.
      return { exitCode: 4, problems, summary };
    }
    const opened = openTolerant(poolPath, repair, report);
    const { core } = opened;
    try {
      summary.journalTransactionsReplayed = opened.replayed;
      // As e2fsck: a last transaction whose data never reached the media (its barrier did not return) is not replayed, and is no error.
      if (opened.replayDiscarded) summary.journalTransactionsDiscarded = 1;
      if ((opened.replayed > 0 || opened.replayDiscarded) && repair) applyReplay(core, opened.replayImages, opened.replayNextSeq);
      new Walker(new FsckContext(core, repair, report), opts.onProgress).run(summary);
      if (repair && !core.readOnly) {
        core.commit();
        core.checkpoint();
        core.sb.state = PoolState.Clean;
        core.sb.incompatFeatures &= ~INCOMPAT_VOUCHING_JOURNAL;
        core.writeSuperblock(true);
      }
      summary.blocksFree = core.alloc.freeSoon;
      summary.blocksUsed = core.sb.geometry.totalBlocks - summary.blocksFree;
    } finally {
      core.pool.close();
    }
  } catch (err) {
    if (err instanceof PoolError) return { exitCode: 8, problems, summary, error: err.hint ? `${err.message}\n${err.hint}` : err.message };
    if (err instanceof FsError) return { exitCode: 8, problems, summary, error: err.message };
    throw err;
  }
  const left = problems.filter((p) => !p.fixed).length;
  return { exitCode: problems.length === 0 ? 0 : left > 0 ? 4 : 1, problems, summary };
}

/** The tree pass: from the root down, then what it did not reach; link counts. */
class Walker {
  private readonly g;
  private readonly claimed: Bits;
  private readonly core: FsCore;
  private readonly repair: boolean;
  private readonly tables: TableCheck;
  private readonly blocks: BlockCheck;
  private readonly refs = new Map<number, number>();
  private readonly subdirs = new Map<number, number>();
  private readonly reached = new Set<number>();
  private readonly inodes: Inode[] = [];
  /** The root was made anew (it has no block until the unreachable pass). */
  private rootRemade = false;

  constructor(private readonly ctx: FsckContext, private readonly onProgress?: (done: number, total: number) => void) {
    this.core = ctx.core;
    this.repair = ctx.repair;
    this.g = ctx.g;
    this.claimed = ctx.claimed;
    this.tables = new TableCheck(ctx);
    this.blocks = new BlockCheck(ctx, this.tables);
  }

  run(summary: FsckReport['summary']): void {
    const rootIno = this.core.sb.rootIno;
    if (this.repair) this.blocks.protectReferenced();
    if (!this.checkRoot()) return;
    this.reached.add(rootIno);
    this.refs.set(rootIno, 1);
    this.walk([rootIno], summary);
    this.unreachable(summary);
    if (this.repair) this.tables.rebuildAll();
    this.linkCounts(summary);
    this.blocks.bitmaps(this.reached);
  }

  /**
   * The root must be a directory that loads. A root marked free in the
   * bitmap is taken as in use (the bitmap pass reports and fixes the bit).
   * With repair, an unusable root is made anew, empty: what it held is found
   * by the unreachable pass and goes to lost+found. False: it is unusable
   * and we may not repair (nothing else can be checked).
   */
  private checkRoot(): boolean {
    const rootIno = this.core.sb.rootIno;
    this.core.inodes.assumeUsed(rootIno);
    let why = '';
    try {
      if (this.core.inode(rootIno).type !== S_IFDIR) why = 'it is not a directory';
    } catch (err) {
      if (!(err instanceof FsError)) throw err;
      why = err.message;
    }
    if (!why) return true;
    this.fix('root', `the root directory cannot be used (${why}); ${this.repair ? 'a new, empty one was made: what the old one held goes to lost+found' : '--repair makes a new one'}`, () => {
      const root = this.core.inodes.remake(rootIno);
      const now = Date.now();
      root.mode = S_IFDIR | 0o755;
      root.nlink = 2;
      root.parent = rootIno;
      root.atimeMs = root.mtimeMs = root.ctimeMs = root.crtimeMs = now;
      // No block yet: one is allocated once every block in use is known (unreachable()).
      this.core.save(root);
      this.rootRemade = true;
    });
    return this.repair;
  }

  /** Walk the tree below the queued inodes (already marked reached), claiming and checking as it goes. */
  private walk(queue: number[], summary: FsckReport['summary']): void {
    const total = this.core.inodes.free >= 0 ? this.g.inodeCount - this.core.inodes.free : 1;
    while (queue.length) {
      const ino = queue.shift()!;
      const inode = this.core.inode(ino);
      this.inodes.push(inode);
      this.onProgress?.(this.inodes.length, total);
      this.blocks.check(inode);
      if (inode.type !== S_IFDIR) continue;
      summary.dirs++;
      if (!this.readableDir(inode)) continue;
      for (const entry of names.readdir(this.core, ino).slice(2)) {
        const child = this.loadChild(inode, entry.name, entry.ino);
        if (!child) continue;
        if (child.type === S_IFDIR) {
          if (this.reached.has(child.ino)) {
            this.fix('directory', `directory ${child.ino} has a second name ${showName(entry.name)} in ${ino}`, () => this.core.dir(inode).remove(entry.name));
            continue;
          }
          this.subdirs.set(ino, (this.subdirs.get(ino) ?? 0) + 1);
          if (child.parent !== ino) this.fix('directory', `directory ${child.ino} records parent ${child.parent}, found in ${ino}`, () => { child.parent = ino; this.core.save(child); });
        }
        if (entry.type !== child.type) this.fix('directory', `entry ${showName(entry.name)} in ${ino} has the wrong type`, () => this.core.dir(inode).retarget(entry.name, child.ino, child.type));
        this.refs.set(child.ino, (this.refs.get(child.ino) ?? 0) + 1);
        if (!this.reached.has(child.ino)) {
          this.reached.add(child.ino);
          queue.push(child.ino);
        }
      }
    }
  }

  private fix(kind: string, message: string, mend: () => void): void {
    this.ctx.fix(kind, message, mend);
  }

  /** The child an entry names, or null (the entry is removed on repair). */
  private loadChild(dir: Inode, name: string, ino: number): Inode | null {
    let child: Inode | null = null;
    let why = '';
    try {
      // A record that decodes is believed over a bit in the inode bitmap (the bitmap pass fixes the bit).
      if (!this.core.inodes.isUsed(ino) && this.core.inodes.peek(ino)) this.core.inodes.assumeUsed(ino);
      child = this.core.inodes.isUsed(ino) ? this.core.inode(ino) : null;
      if (!child) why = 'a free inode';
    } catch (err) {
      if (!(err instanceof FsError)) throw err;
      why = err.message;
      child = null;
    }
    if (child) return child;
    this.fix('directory', `entry ${showName(name)} in directory ${dir.ino} points to inode ${ino}: ${why}`, () => this.core.dir(dir).remove(name));
    return null;
  }

  /**
   * Can the directory's blocks be read? With repair, one that cannot is
   * salvaged: a hole or a size that is not whole blocks ends it, and each
   * block keeps the records that still make sense (the inodes of the others
   * are found by the unreachable pass and go to lost+found).
   */
  private readableDir(inode: Inode): boolean {
    try {
      this.core.dir(inode);
      return true;
    } catch (err) {
      if (!(err instanceof FsError)) throw err;
      this.fix('directory', `directory ${inode.ino} cannot be read: ${err.message}`, () => this.salvageDir(inode));
    }
    if (!this.repair) return false;
    this.core.dir(inode);
    return true;
  }

  private salvageDir(inode: Inode): void {
    const count = Math.ceil(inode.size / BLOCK_SIZE);
    let keep = 0;
    while (keep < count && inode.extents.lookup(keep) >= 0) keep++;
    const dropped = inode.extents.truncate(keep);
    for (const run of dropped) this.claimed.setRange(run.start, run.count, false);
    this.core.dropBlocks(inode, dropped);
    if (keep === 0) {
      const block = this.core.inodes.allocMeta();
      this.claimed.set(block, true);
      inode.extents.add(0, block, 1);
      inode.blocks++;
      keep = 1;
      this.core.store.install(block, salvageDirBlock(Buffer.alloc(BLOCK_SIZE), () => false, new Set()).image, 'crc');
    }
    inode.size = keep * BLOCK_SIZE;
    const seen = new Set<string>();
    for (let i = 0; i < keep; i++) {
      const block = inode.extents.lookup(i);
      const raw = this.core.store.load(block, 'raw', 'directory block'); // the replayed image when the journal has one
      const valid = (ino: number): boolean => ino > 0 && ino < this.g.inodeCount;
      this.core.store.install(block, salvageDirBlock(raw, valid, seen).image, 'crc');
    }
    inode.dir = null;
    this.core.save(inode);
  }







  /**
   * In-use inodes the walk did not reach: orphans are freed, the others go
   * to lost+found, directories first and the top of each unreached subtree
   * first, whose walk then brings the subtree back whole.
   */
  private unreachable(summary: FsckReport['summary']): void {
    const pending: Inode[] = [];
    for (const ino of [...this.core.inodes.inUse()]) {
      if (this.reached.has(ino)) continue;
      let inode: Inode;
      try {
        inode = this.core.inode(ino);
      } catch (err) {
        if (!(err instanceof FsError)) throw err;
        this.fix('inode', `inode ${ino} is marked in use but unreadable: ${err.message}`, () => this.core.inodes.forceFree(ino));
        continue;
      }
      if (inode.nlink === 0) {
        this.fix('orphan', `inode ${ino} was unlinked while open (orphan); freeing it`, () => {
          // Its table is not walked to free it (nothing checked it): the bitmap pass frees the nodes.
          inode.pptRoot = 0;
          inode.pptLevel = 0;
          inode.pptNodes = 0;
          this.core.reapIfUnused(inode);
        });
        continue;
      }
      this.blocks.check(inode);
      pending.push(inode);
    }
    // Nothing the walk found may be handed out while lost+found is made.
    if (this.repair) this.core.alloc.absorb(this.claimed);
    if (this.rootRemade) names.ensureDirBlock(this.core, this.core.inode(this.core.sb.rootIno), (b) => this.claimed.set(b, true));
    const pendingDirs = new Set(pending.filter((i) => i.type === S_IFDIR).map((i) => i.ino));
    const order = [
      ...pending.filter((i) => i.type === S_IFDIR && !pendingDirs.has(i.parent)),
      ...pending.filter((i) => i.type === S_IFDIR),
      ...pending.filter((i) => i.type !== S_IFDIR),
    ];
    const seen = new Set<number>(); // a directory is in `order` twice; without --repair nothing marks it reached
    for (const inode of order) {
      if (this.reached.has(inode.ino) || seen.has(inode.ino)) continue;
      seen.add(inode.ino);
      if (inode.type === S_IFDIR && !this.readableDir(inode)) continue;
      this.fix('unreachable', `inode ${inode.ino} is in use but has no name; reconnecting it under /${LOST_FOUND}`, () => {
        const lf = this.lostAndFound();
        if (inode.type === S_IFDIR) {
          inode.parent = lf.ino;
          this.subdirs.set(lf.ino, (this.subdirs.get(lf.ino) ?? 0) + 1);
        }
        // Link counts are set right by the next pass.
        names.attach(this.core, lf.ino, `#${inode.ino}`, inode);
        this.refs.set(inode.ino, (this.refs.get(inode.ino) ?? 0) + 1);
        this.reached.add(inode.ino);
        this.walk([inode.ino], summary);
      });
    }
  }

  private lostAndFound(): Inode {
    const root = this.core.sb.rootIno;
    let name = LOST_FOUND;
    for (let n = 2; ; n++) {
      let existing: Inode | null = null;
      try {
        existing = this.core.inode(names.lookup(this.core, root, name));
      } catch {
        break;
      }
      if (existing.type === S_IFDIR) return existing;
      name = `${LOST_FOUND}.${n}`; // a file took the name
    }
    {
      const lf = names.mkdir(this.core, root, name, 0o700, { uid: 0, gid: 0 });
      this.reached.add(lf.ino);
      this.refs.set(lf.ino, 1);
      this.subdirs.set(root, (this.subdirs.get(root) ?? 0) + 1);
      this.inodes.push(lf);
      this.blocks.check(lf);
      return lf;
    }
  }

  private linkCounts(summary: FsckReport['summary']): void {
    for (const inode of this.inodes) {
      summary.inodes++;
      if (inode.type === S_IFREG || inode.type === S_IFLNK) summary.files++;
      const want = inode.type === S_IFDIR ? 2 + (this.subdirs.get(inode.ino) ?? 0) : (this.refs.get(inode.ino) ?? 0);
      if (inode.nlink !== want) this.fix('nlink', `inode ${inode.ino}: link count ${inode.nlink}, should be ${want}`, () => { inode.nlink = want; this.core.save(inode); });
    }
  }

}
