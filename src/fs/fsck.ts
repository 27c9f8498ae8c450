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
 */
import { FsError, S_IFDIR, S_IFLNK, S_IFREG } from './api.js';
import { Bits } from './bitmap.js';
import { showName } from './bytestr.js';
import type { FsCore } from './core.js';
import { PoolError } from '../core/errors.js';
import type { Inode } from './inode.js';
import { INODE_FLAG_INLINE_SYMLINK } from '../core/format/inode.js';
import { BLOCK_SIZE, PoolState } from '../core/format/pool.js';
import { applyReplay } from './open.js';
import { checkSuperblock, openTolerant, type Report } from './fsck-superblock.js';
import { salvageDirBlock } from './dir.js';
import { ExtentList, type Extent } from './extents.js';
import { loadXattrs } from './xattr.js';
import * as names from './ops-names.js';
import { blocksPerEntry, ENTRIES_PER_NODE, levelForSize } from '../core/format/ppt.js';
import { walkTable } from '../ppt/tables.js';

export interface FsckProblem {
  kind: string;
  message: string;
  fixed: boolean;
}

export interface FsckReport {
  exitCode: 0 | 1 | 4 | 8;
  problems: FsckProblem[];
  summary: { inodes: number; dirs: number; files: number; blocksUsed: number; blocksFree: number; journalTransactionsReplayed: number };
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
  const summary = { inodes: 0, dirs: 0, files: 0, blocksUsed: 0, blocksFree: 0, journalTransactionsReplayed: 0 };
  try {
    if (!checkSuperblock(poolPath, repair, report)) {
      // The rest cannot be checked until the primary superblock is restored.
      return { exitCode: 4, problems, summary };
    }
    const opened = openTolerant(poolPath, repair, report);
    const { core } = opened;
    try {
      summary.journalTransactionsReplayed = opened.replayed;
      if (opened.replayed > 0 && repair) applyReplay(core, opened.replayImages, opened.replayNextSeq);
      new Walker(core, repair, report, opts.onProgress).run(summary);
      if (repair && !core.readOnly) {
        core.commit();
        core.checkpoint();
        core.sb.state = PoolState.Clean;
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

class Walker {
  private readonly g;
  private readonly claimed: Bits;
  private readonly refs = new Map<number, number>();
  private readonly subdirs = new Map<number, number>();
  private readonly reached = new Set<number>();
  private readonly inodes: Inode[] = [];
  /** The root was made anew (it has no block until the unreachable pass). */
  private rootRemade = false;
  /** Inodes whose blocks were claimed already. */
  private readonly checked = new Set<number>();
  /** Files whose page table is rebuilt after the walk. */
  private readonly rebuild: Inode[] = [];

  constructor(
    private readonly core: FsCore,
    private readonly repair: boolean,
    private readonly report: Report,
    private readonly onProgress?: (done: number, total: number) => void,
  ) {
    this.g = core.sb.geometry;
    this.claimed = new Bits(this.g.totalBlocks);
    this.claimed.setRange(0, this.g.dataStart, true);
  }

  run(summary: FsckReport['summary']): void {
    const rootIno = this.core.sb.rootIno;
    if (this.repair) this.protectReferenced();
    if (!this.checkRoot()) return;
    this.reached.add(rootIno);
    this.refs.set(rootIno, 1);
    this.walk([rootIno], summary);
    this.unreachable(summary);
    if (this.repair) this.rebuildTables();
    this.linkCounts(summary);
    this.bitmaps();
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
      this.checkBlocks(inode);
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
    if (this.repair) mend();
    this.report(kind, message, this.repair);
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
   * Claim every block the inode owns. With repair, what cannot be owned is
   * let go: extents out of order, outside the data area, on blocks another
   * owner claimed first; an extent chain on such blocks is written anew; extended
   * attributes that cannot be read are dropped. Blocks let go are not
   * claimed, so the bitmap pass frees them (or leaves them to their owner).
   * A regular file may own blocks past its end: fallocate --keep-size.
   */
  private checkBlocks(inode: Inode): void {
    if (this.checked.has(inode.ino)) return;
    this.checked.add(inode.ino);
    const ino = inode.ino;
    let changed = false;
    const free = (start: number, n: number): string => {
      if (start < this.g.dataStart || start + n > this.g.totalBlocks) return 'lies outside the data area';
      for (let b = start; b < start + n; b++) if (this.claimed.get(b)) return `shares block ${b} with another owner`;
      return '';
    };
    let count = 0;
    const claim = (start: number, n: number): void => {
      this.claimed.setRange(start, n, true);
      count += n;
    };
    if (!(inode.flags & INODE_FLAG_INLINE_SYMLINK)) {
      const keep: Extent[] = [];
      let prevEnd = 0;
      for (const e of inode.extents.items) {
        const what = `inode ${ino}: extent ${e.logical}+${e.count} at block ${e.physical}`;
        const why = e.count <= 0 || e.logical < prevEnd ? 'overlaps another or is out of order' : free(e.physical, e.count);
        if (!why) keep.push({ ...e });
        if (why) this.fix('extent', `${what} ${why}; ${this.repair ? 'let go' : '--repair lets it go'}`, () => { changed = true; });
        prevEnd = Math.max(prevEnd, e.logical + e.count);
      }
      for (const e of keep) claim(e.physical, e.count);
      if (changed) {
        inode.extents = new ExtentList(keep);
        inode.dir = null;
      }
    }
    const chainBad = inode.chainBlocks.map((b) => free(b, 1)).find((w) => w) ??
      (new Set(inode.chainBlocks).size !== inode.chainBlocks.length ? 'uses a block twice' : '');
    if (chainBad) {
      this.fix('extent', `inode ${ino}: its extent chain ${chainBad}; ${this.repair ? 'written anew' : '--repair writes it anew'}`, () => {
        inode.chainBlocks = [];
        inode.extentChain = 0;
        changed = true;
      });
    } else {
      for (const b of inode.chainBlocks) claim(b, 1);
    }
    if (inode.xattrBlock) {
      const why = free(inode.xattrBlock, 1) || this.xattrProblem(inode);
      if (why) {
        this.fix('xattr', `inode ${ino}: its extended attributes cannot be used (${why}); ${this.repair ? 'dropped' : '--repair drops them'}`, () => {
          inode.xattrBlock = 0;
          inode.xattrs = null;
          changed = true;
        });
      } else {
        claim(inode.xattrBlock, 1);
      }
    }
    this.checkTable(inode);
    if (changed) {
      // Saving writes a chain anew where one is needed (blocks in use are all protected by now).
      this.core.save(inode);
      for (const b of inode.chainBlocks) if (!this.claimed.get(b)) claim(b, 1);
      inode.blocks = count;
      this.core.save(inode);
    }
    if (count !== inode.blocks) {
      this.fix('inode', `inode ${ino}: block count ${inode.blocks}, owns ${count}`, () => { inode.blocks = count; this.core.save(inode); });
    }
  }

  /** Why the inode's xattr block cannot be read ('' when it can). */
  private xattrProblem(inode: Inode): string {
    try {
      inode.xattrs = null;
      loadXattrs(this.core.store, inode);
      return '';
    } catch (err) {
      if (!(err instanceof FsError)) throw err;
      inode.xattrs = null;
      return err.message;
    }
  }

  /**
   * Repair only: keep every block that any inode record refers to from
   * being handed out by a repair that allocates (a new extent chain, a
   * directory block) before the walk has claimed them all: the bitmap may
   * be the damaged part.
   */
  private protectReferenced(): void {
    const alloc = this.core.alloc;
    for (let ino = 1; ino < this.g.inodeCount; ino++) {
      const inode = this.core.inodes.peek(ino);
      if (!inode) continue;
      for (const e of inode.extents.items) alloc.protect(e.physical, e.count);
      for (const b of inode.chainBlocks) alloc.protect(b, 1);
      if (inode.xattrBlock) alloc.protect(inode.xattrBlock, 1);
      if (inode.pptRoot) {
        try {
          walkTable((b) => this.core.pool.read(b * BLOCK_SIZE, BLOCK_SIZE), this.core.tableOf(inode), () => undefined, (b) => alloc.protect(b, 1));
        } catch {
          // a table that cannot be walked is rebuilt later; its nodes are not kept
        }
      }
    }
  }

  /**
   * A page table must map exactly what the extent index maps, with nodes in
   * the data area owned by nobody else, at the level the size asks for.
   * A bad table is dropped and rebuilt (tables are derived data).
   */
  private checkTable(inode: Inode): void {
    const knobOn = this.core.sb.knobs.pageTablesOn === 1;
    const ref = this.core.tableOf(inode);
    if (!ref.root && !ref.level && !ref.nodes) {
      if (knobOn && inode.type === S_IFREG && inode.extents.length && levelForSize(inode.size) > 0) {
        this.fix('ppt', `inode ${inode.ino}: no page table while page_tables_on is 1`, () => this.rebuild.push(inode));
      }
      return;
    }
    if (!knobOn) {
      this.fix('ppt', `inode ${inode.ino}: a page table while page_tables_on is 0`, () => this.resetTable(inode));
      return;
    }
    const nodes = new Set<number>();
    let leafBlocks = 0;
    let why = '';
    if (inode.type !== S_IFREG) why = 'a page table on a file that is not regular';
    else if (ref.level !== levelForSize(inode.size)) why = `level ${ref.level}, size ${inode.size} needs ${levelForSize(inode.size)}`;
    else {
      try {
        walkTable(
          (b) => this.core.nodeStore.node(b),
          ref,
          (leaf) => {
            const segs = inode.extents.map(leaf.logical, leaf.count);
            const [seg] = segs;
            if (segs.length !== 1 || seg?.physical !== leaf.physical) throw new Error(`entry for logical block ${leaf.logical} maps pool block ${leaf.physical}, the extents say ${seg?.physical ?? 'a hole'}`);
            leafBlocks += leaf.count;
          },
          (b) => {
            if (b < this.g.dataStart || b >= this.g.totalBlocks || this.claimed.get(b) || nodes.has(b)) throw new Error(`node block ${b} is outside the data area or owned twice`);
            nodes.add(b);
          },
        );
        // Blocks preallocated past the end (fallocate --keep-size) beyond the root's reach have no entry.
        const reach = blocksPerEntry(ref.level) * ENTRIES_PER_NODE;
        const mapped = inode.extents.items.reduce((n, e) => n + Math.max(0, Math.min(e.logical + e.count, reach) - e.logical), 0);
        if (leafBlocks !== mapped) why = `the table maps ${leafBlocks} blocks, the extents ${mapped}`;
        else if (nodes.size !== ref.nodes) why = `${nodes.size} nodes, the inode says ${ref.nodes}`;
      } catch (err) {
        why = (err as Error).message;
      }
    }
    if (why) {
      this.fix('ppt', `inode ${inode.ino}: bad page table: ${why}`, () => {
        this.resetTable(inode);
        this.rebuild.push(inode);
      });
      return;
    }
    for (const b of nodes) this.claimed.set(b, true);
  }

  /** Forget a table without trusting its nodes (the bitmap pass frees them). */
  private resetTable(inode: Inode): void {
    inode.pptRoot = 0;
    inode.pptLevel = 0;
    inode.pptNodes = 0;
    this.core.save(inode);
  }

  /** Rebuild the tables dropped above, once nothing found can be handed out. */
  private rebuildTables(): void {
    for (const inode of this.rebuild) {
      this.resetTable(inode);
      this.core.syncTables(inode, 0, Math.ceil(inode.size / BLOCK_SIZE));
      this.core.save(inode);
      walkTable((b) => this.core.nodeStore.node(b), this.core.tableOf(inode), () => undefined, (b) => this.claimed.set(b, true));
    }
  }

  /** In-use inodes the walk did not reach: orphans are freed, others go to lost+found. */
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
      this.checkBlocks(inode);
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
    for (const inode of order) {
      if (this.reached.has(inode.ino)) continue;
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
      this.checkBlocks(lf);
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

  private bitmaps(): void {
    const alloc = this.core.alloc;
    let markedFree = 0;
    let markedUsed = 0;
    for (let b = this.g.dataStart; b < this.g.totalBlocks; b++) {
      const onMedia = alloc.isUsedOnMedia(b);
      const want = this.claimed.get(b);
      if (onMedia === want) continue;
      if (want) markedFree++;
      else markedUsed++;
    }
    if (markedFree || markedUsed) {
      this.fix('bitmap', `block bitmap: ${markedFree} used block(s) marked free, ${markedUsed} free block(s) marked used`, () => alloc.rebuild(this.claimed));
    }
    const inodeDiff = this.core.inodes.differences(this.reached);
    if (inodeDiff) this.fix('bitmap', `inode bitmap: ${inodeDiff} inode(s) marked wrongly`, () => this.core.inodes.rebuild(this.reached));
  }
}
