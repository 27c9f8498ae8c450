/**
 * fsck: check every invariant of a pool, and with `repair` fix what can be
 * fixed. Exit codes as e2fsck: 0 clean, 1 corrected, 4 left uncorrected,
 * 8 operational error.
 *
 * Passes: superblock (primary, else backup), journal replay, then a walk of
 * the tree from the root checking inodes, extents, directory entries and
 * link counts while claiming every block; then unreachable inodes (orphans
 * are freed, others reconnected under /lost+found); then both bitmaps
 * against what the walk found.
 */
import fs from 'node:fs';
import { FsError, S_IFDIR, S_IFLNK, S_IFREG } from './api.js';
import { Bits } from './bitmap.js';
import type { FsCore } from './core.js';
import { PoolError } from './errors.js';
import type { Inode } from './inode.js';
import { INODE_FLAG_INLINE_SYMLINK } from './inode.js';
import { BACKUP_SUPERBLOCK_BLOCK, BLOCK_SIZE, decodeSuperblock, encodeSuperblock, PoolState, type Geometry, type Superblock } from './layout.js';
import { applyReplay, openCore, readSuperblock } from './open.js';
import * as names from './ops-names.js';
import { levelForSize } from '../ppt/format.js';
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
    if (err instanceof PoolError) return { exitCode: 8, problems, summary, error: `${err.message}\n${err.hint}` };
    if (err instanceof FsError) return { exitCode: 8, problems, summary, error: err.message };
    throw err;
  }
  const left = problems.filter((p) => !p.fixed).length;
  return { exitCode: problems.length === 0 ? 0 : left > 0 ? 4 : 1, problems, summary };
}

type Report = (kind: string, message: string, fixed: boolean) => void;

/**
 * A bad primary superblock is restored from the backup (with repair): one
 * that fails its checks, lacks the magic, claims more blocks than the file
 * has, or whose geometry differs from the backup's (the geometry never
 * changes after mkfs; the rest of a valid primary is kept then).
 * False: it is bad, the backup is good, and we may not repair.
 */
function checkSuperblock(poolPath: string, repair: boolean, report: Report): boolean {
  let primary: Superblock | null = null;
  let problem: PoolError | null = null;
  try {
    primary = readSuperblock(poolPath);
  } catch (err) {
    if (!(err instanceof PoolError) || !['ECORRUPT', 'ENOTPOOL', 'ETRUNCATED'].includes(err.code)) throw err;
    problem = err;
  }
  const fd = fs.openSync(poolPath, repair ? 'r+' : 'r');
  try {
    const image = Buffer.alloc(BLOCK_SIZE);
    fs.readSync(fd, image, 0, BLOCK_SIZE, BACKUP_SUPERBLOCK_BLOCK * BLOCK_SIZE);
    const decoded = decodeSuperblock(image);
    const backup = decoded.ok && decoded.sb.geometry.totalBlocks * BLOCK_SIZE <= fs.fstatSync(fd).size ? decoded.sb : null;
    let fixed: Superblock;
    let message: string;
    if (primary) {
      if (!decoded.ok) {
        // The primary is good: the backup is rewritten from it at the end of a repair.
        report('superblock', `the backup superblock is corrupt (${decoded.detail}); ${repair ? 'rewritten' : '--repair rewrites it'}`, repair);
        return true;
      }
      const other = decoded.sb;
      const differs = (Object.keys(other.geometry) as Array<keyof Geometry>).find((k) => other.geometry[k] !== primary!.geometry[k]);
      if (!differs) return true;
      // Both check out but disagree: a pool is exactly as large as its geometry says, so trust the one that fits the file.
      const size = fs.fstatSync(fd).size;
      if (!backup || primary.geometry.totalBlocks * BLOCK_SIZE === size || other.geometry.totalBlocks * BLOCK_SIZE !== size) {
        report('superblock', `the backup superblock's ${differs} is ${other.geometry[differs]}, the primary's ${primary.geometry[differs]}; ${repair ? 'the backup was rewritten' : '--repair rewrites the backup'}`, repair);
        return true;
      }
      fixed = { ...primary, geometry: backup.geometry };
      message = `the primary superblock's ${differs} is ${primary.geometry[differs]}, the backup's ${backup.geometry[differs]}`;
    } else {
      if (!backup) {
        if (problem!.code !== 'ECORRUPT') throw problem!;
        throw new PoolError('ECORRUPT', `${poolPath}: both superblocks are corrupt (${decoded.ok ? 'the backup claims more blocks than the file has' : decoded.detail})`, 'the pool cannot be recovered by fsck');
      }
      fixed = { ...backup, state: PoolState.Mounted }; // force the full check and orphan pass
      message = problem!.message;
    }
    if (repair) {
      fs.writeSync(fd, encodeSuperblock(fixed), 0, BLOCK_SIZE, 0);
      fs.fdatasyncSync(fd);
    }
    report('superblock', `${message}; the backup superblock is good${repair ? ' and was copied over it' : ' (--repair restores it)'}`, repair);
    return repair;
  } finally {
    fs.closeSync(fd);
  }
}

/** Open even with corrupt bitmaps (they are rebuilt from the walk). */
function openTolerant(poolPath: string, repair: boolean, report: Report): ReturnType<typeof openCore> {
  try {
    return openCore(poolPath, { readOnly: !repair });
  } catch (err) {
    if (!(err instanceof PoolError) || err.code !== 'ECORRUPT' || !/bitmap/.test(err.message)) throw err;
    report('bitmap', err.message, repair);
    return openCore(poolPath, { readOnly: !repair, ignoreBitmaps: true });
  }
}

class Walker {
  private readonly g;
  private readonly claimed: Bits;
  private readonly refs = new Map<number, number>();
  private readonly subdirs = new Map<number, number>();
  private readonly reached = new Set<number>();
  private readonly inodes: Inode[] = [];
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
    const queue = [rootIno];
    this.reached.add(rootIno);
    this.refs.set(rootIno, 1);
    const total = this.core.inodes.free >= 0 ? this.g.inodeCount - this.core.inodes.free : 1;
    while (queue.length) {
      const ino = queue.shift()!;
      const inode = this.core.inode(ino);
      this.inodes.push(inode);
      this.onProgress?.(this.inodes.length, total);
      this.checkBlocks(inode);
      if (inode.type !== S_IFDIR) continue;
      summary.dirs++;
      for (const entry of names.readdir(this.core, ino).slice(2)) {
        const child = this.loadChild(inode, entry.name, entry.ino);
        if (!child) continue;
        if (child.type === S_IFDIR) {
          if (this.reached.has(child.ino)) {
            this.fix('directory', `directory ${child.ino} has a second name ${JSON.stringify(entry.name)} in ${ino}`, () => this.core.dir(inode).remove(entry.name));
            continue;
          }
          this.subdirs.set(ino, (this.subdirs.get(ino) ?? 0) + 1);
          if (child.parent !== ino) this.fix('directory', `directory ${child.ino} records parent ${child.parent}, found in ${ino}`, () => { child.parent = ino; this.core.save(child); });
        }
        if (entry.type !== child.type) this.fix('directory', `entry ${JSON.stringify(entry.name)} in ${ino} has the wrong type`, () => this.core.dir(inode).retarget(entry.name, child.ino, child.type));
        this.refs.set(child.ino, (this.refs.get(child.ino) ?? 0) + 1);
        if (!this.reached.has(child.ino)) {
          this.reached.add(child.ino);
          queue.push(child.ino);
        }
      }
    }
    this.unreachable();
    if (this.repair) this.rebuildTables();
    this.linkCounts(summary);
    this.bitmaps();
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
      child = this.core.inodes.isUsed(ino) ? this.core.inode(ino) : null;
      if (!child) why = 'a free inode';
      if (child?.type === S_IFDIR) this.core.dir(child);
    } catch (err) {
      why = (err as Error).message;
      child = null;
    }
    if (child) return child;
    this.fix('directory', `entry ${JSON.stringify(name)} in directory ${dir.ino} points to inode ${ino}: ${why}`, () => this.core.dir(dir).remove(name));
    return null;
  }

  /** Claim every block the inode owns; check extents against size and pool. */
  private checkBlocks(inode: Inode): void {
    let count = 0;
    const claim = (start: number, n: number, what: string): boolean => {
      if (start < this.g.dataStart || start + n > this.g.totalBlocks) {
        this.report('extent', `inode ${inode.ino}: ${what} ${start}+${n} lies outside the data area`, false);
        return false;
      }
      for (let b = start; b < start + n; b++) {
        if (this.claimed.get(b)) {
          this.report('extent', `inode ${inode.ino}: ${what} block ${b} is claimed twice`, false);
          return false;
        }
      }
      this.claimed.setRange(start, n, true);
      count += n;
      return true;
    };
    if (!(inode.flags & INODE_FLAG_INLINE_SYMLINK)) {
      let prevEnd = 0;
      for (const e of inode.extents.items) {
        if (e.count <= 0 || e.logical < prevEnd) this.report('extent', `inode ${inode.ino}: extents overlap or are out of order`, false);
        prevEnd = e.logical + e.count;
        claim(e.physical, e.count, 'extent');
      }
      const limit = Math.ceil(inode.size / BLOCK_SIZE);
      if (inode.type === S_IFREG && prevEnd > limit) {
        this.fix('extent', `inode ${inode.ino}: blocks mapped past its size`, () => {
          this.core.dropBlocks(inode, inode.extents.truncate(limit));
          this.core.save(inode);
        });
      }
    }
    for (const b of inode.chainBlocks) claim(b, 1, 'extent chain');
    if (inode.xattrBlock) claim(inode.xattrBlock, 1, 'xattr');
    this.checkTable(inode);
    if (count !== inode.blocks && !(this.repair && inode.type === S_IFREG && count > inode.blocks)) {
      this.fix('inode', `inode ${inode.ino}: block count ${inode.blocks}, owns ${count}`, () => { inode.blocks = count; this.core.save(inode); });
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
      if (knobOn && inode.type === S_IFREG && inode.extents.length) {
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
            if (segs.length !== 1 || segs[0]!.physical !== leaf.physical) throw new Error(`entry for logical block ${leaf.logical} maps pool block ${leaf.physical}, the extents say ${segs[0]?.physical ?? 'a hole'}`);
            leafBlocks += leaf.count;
          },
          (b) => {
            if (b < this.g.dataStart || b >= this.g.totalBlocks || this.claimed.get(b) || nodes.has(b)) throw new Error(`node block ${b} is outside the data area or owned twice`);
            nodes.add(b);
          },
        );
        if (leafBlocks !== inode.extents.blocks) why = `the table maps ${leafBlocks} blocks, the extents ${inode.extents.blocks}`;
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
  private unreachable(): void {
    const named: Inode[] = [];
    for (const ino of [...this.core.inodes.inUse()]) {
      if (this.reached.has(ino)) continue;
      let inode: Inode;
      try {
        inode = this.core.inode(ino);
        if (inode.type === S_IFDIR) this.core.dir(inode);
      } catch (err) {
        this.fix('inode', `inode ${ino} is marked in use but unreadable: ${(err as Error).message}`, () => this.core.inodes.forceFree(ino));
        continue;
      }
      if (inode.nlink === 0) {
        this.fix('orphan', `inode ${ino} was unlinked while open (orphan); freeing it`, () => this.core.reapIfUnused(inode));
        continue;
      }
      this.checkBlocks(inode);
      named.push(inode);
    }
    // Nothing the walk found may be handed out while lost+found is made.
    if (this.repair) this.core.alloc.absorb(this.claimed);
    for (const inode of named) {
      this.fix('unreachable', `inode ${inode.ino} is in use but has no name; reconnecting it under /${LOST_FOUND}`, () => {
        const lf = this.lostAndFound();
        if (inode.type === S_IFDIR) {
          inode.parent = lf.ino;
          this.subdirs.set(lf.ino, (this.subdirs.get(lf.ino) ?? 0) + 1);
        }
        // Link counts are set right by the next pass.
        names.attach(this.core, lf.ino, `#${inode.ino}`, inode);
        this.refs.set(inode.ino, 1);
        this.reached.add(inode.ino);
        this.inodes.push(inode);
      });
    }
  }

  private lostAndFound(): Inode {
    const root = this.core.sb.rootIno;
    try {
      return this.core.inode(names.lookup(this.core, root, LOST_FOUND));
    } catch {
      const lf = names.mkdir(this.core, root, LOST_FOUND, 0o700, { uid: 0, gid: 0 });
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
