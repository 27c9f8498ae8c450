/**
 * The metadata client's operations and the model of the tree they make.
 * The client (load-meta-client.ts) picks valid operations with it; the
 * checker replays the client's log through it to know every state the
 * tree went through.
 *
 * A file's content is always the prefix of its own pattern (seed of the
 * file's id, load-pattern.ts): created empty, grown only by appends,
 * shrunk only by truncate. So a file is fully described by (id, size),
 * and a state by its directories, names, and per inode the size, xattrs
 * and which names share it.
 */
import { createHash } from 'node:crypto';
import { mixSeed } from './image.js';
import { patternAt } from './load-pattern.js';

export type MetaOp =
  | { op: 'mkdir'; p: string }
  | { op: 'rmdir'; p: string }
  | { op: 'create'; p: string; id: number }
  | { op: 'append'; p: string; n: number }
  | { op: 'trunc'; p: string; size: number }
  | { op: 'fsync'; p: string; data: boolean }
  | { op: 'dirsync'; p: string }
  | { op: 'rename'; from: string; to: string }
  | { op: 'link'; from: string; to: string }
  | { op: 'unlink'; p: string }
  | { op: 'setx'; p: string; name: string; v: string }
  | { op: 'rmx'; p: string; name: string }
  /** Open a file and keep it open (it may be unlinked meanwhile: an orphan at a crash); drop: close it. */
  | { op: 'hold'; p: string }
  | { op: 'drop' };

/** One line of the client's log: an operation tried, then its outcome. */
export type MetaLogLine =
  | ({ s: number; t: 'try' } & MetaOp)
  | { s: number; t: 'ok'; n?: number }
  | { s: number; t: 'err'; code: string };

/** Operations after which everything before them is durable (daxvm's fsync commits the whole journal). */
export const isDurabilityPoint = (op: MetaOp): boolean => op.op === 'fsync' || op.op === 'dirsync';

export interface MInode {
  id: number;
  size: number;
  xattrs: Map<string, string>;
}

export const contentSeed = (runSeed: number, id: number): number => mixSeed(runSeed, id, 0x3e7a);

export class MetaModel {
  readonly dirs = new Set<string>();
  /** File path → inode (the id of the file it was created as). */
  readonly names = new Map<string, number>();
  readonly inodes = new Map<number, MInode>();

  constructor(readonly runSeed: number) {}

  private parentOk(p: string): boolean {
    const i = p.lastIndexOf('/');
    return i < 0 || this.dirs.has(p.slice(0, i));
  }

  exists(p: string): boolean {
    return this.dirs.has(p) || this.names.has(p);
  }

  childrenOf(dir: string): string[] {
    const pre = dir + '/';
    return [...this.dirs, ...this.names.keys()].filter((p) => p.startsWith(pre) && !p.slice(pre.length).includes('/'));
  }

  private file(p: string): MInode {
    const ino = this.names.get(p);
    if (ino === undefined) throw new Error(`model: no file ${p}`);
    return this.inodes.get(ino)!;
  }

  private dropName(p: string): void {
    const ino = this.names.get(p)!;
    this.names.delete(p);
    if (![...this.names.values()].includes(ino)) this.inodes.delete(ino);
  }

  /** Apply an operation that succeeded; throws when it could not have (a bug of the client's choice). */
  apply(o: MetaOp, appended?: number): void {
    switch (o.op) {
      case 'mkdir':
        if (this.exists(o.p) || !this.parentOk(o.p)) throw new Error(`model: mkdir ${o.p}`);
        this.dirs.add(o.p);
        return;
      case 'rmdir':
        if (!this.dirs.has(o.p) || this.childrenOf(o.p).length) throw new Error(`model: rmdir ${o.p}`);
        this.dirs.delete(o.p);
        return;
      case 'create':
        if (this.exists(o.p) || !this.parentOk(o.p)) throw new Error(`model: create ${o.p}`);
        this.names.set(o.p, o.id);
        this.inodes.set(o.id, { id: o.id, size: 0, xattrs: new Map() });
        return;
      case 'append':
        this.file(o.p).size += appended ?? o.n;
        return;
      case 'trunc': {
        const f = this.file(o.p);
        if (o.size > f.size) throw new Error(`model: truncate up ${o.p}`);
        f.size = o.size;
        return;
      }
      case 'setx':
        this.file(o.p).xattrs.set(o.name, o.v);
        return;
      case 'rmx':
        if (!this.file(o.p).xattrs.delete(o.name)) throw new Error(`model: rmx ${o.p} ${o.name}`);
        return;
      case 'link':
        if (this.exists(o.to) || !this.parentOk(o.to) || !this.names.has(o.from)) throw new Error(`model: link ${o.from} ${o.to}`);
        this.names.set(o.to, this.names.get(o.from)!);
        return;
      case 'unlink':
        if (!this.names.has(o.p)) throw new Error(`model: unlink ${o.p}`);
        this.dropName(o.p);
        return;
      case 'rename':
        return this.rename(o.from, o.to);
      case 'fsync':
      case 'dirsync':
      case 'hold':
      case 'drop':
        return;
    }
  }

  private rename(from: string, to: string): void {
    if (from === to || !this.parentOk(to)) throw new Error(`model: rename ${from} ${to}`);
    if (this.names.has(from)) {
      if (this.dirs.has(to)) throw new Error(`model: rename file over dir ${to}`);
      const ino = this.names.get(from)!;
      if (this.names.get(to) === ino) return; // two names of one inode: rename does nothing
      if (this.names.has(to)) this.dropName(to);
      this.names.delete(from);
      this.names.set(to, ino);
      return;
    }
    if (!this.dirs.has(from) || to.startsWith(from + '/') || this.names.has(to)) throw new Error(`model: rename dir ${from} ${to}`);
    if (this.dirs.has(to)) {
      if (this.childrenOf(to).length) throw new Error(`model: rename over non-empty ${to}`);
      this.dirs.delete(to);
    }
    const move = (p: string) => (p === from ? to : p.startsWith(from + '/') ? to + p.slice(from.length) : p);
    for (const d of [...this.dirs]) {
      this.dirs.delete(d);
      this.dirs.add(move(d));
    }
    for (const [p, ino] of [...this.names]) {
      this.names.delete(p);
      this.names.set(move(p), ino);
    }
  }

  /** Canonical description of the state: path → what a walk of the tree must find there. */
  describe(): Map<string, string> {
    const out = new Map<string, string>();
    for (const d of this.dirs) out.set(d, 'dir');
    const byIno = new Map<number, string[]>();
    for (const [p, ino] of this.names) (byIno.get(ino) ?? byIno.set(ino, []).get(ino)!).push(p);
    for (const [ino, paths] of byIno) {
      const f = this.inodes.get(ino)!;
      paths.sort();
      const desc = fileDesc(f.size, paths.length, contentHash(this.runSeed, f.id, f.size), f.xattrs, paths[0]!);
      for (const p of paths) out.set(p, desc);
    }
    return out;
  }
}

export function fileDesc(size: number, nlink: number, hash: string, xattrs: Map<string, string>, firstName: string): string {
  const x = [...xattrs].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v.length > 24 ? `${v.slice(0, 12)}..(${v.length})` : v}`);
  return `file size ${size} nlink ${nlink} content ${hash.slice(0, 12)} xattrs [${x.join(' ')}] names-of-inode-from ${firstName}`;
}

const hashCache = new Map<string, string>();

/** Hash of the first `size` bytes of file `id`'s content. */
export function contentHash(runSeed: number, id: number, size: number): string {
  const key = `${runSeed}:${id}:${size}`;
  let h = hashCache.get(key);
  if (!h) {
    h = createHash('sha1').update(patternAt(contentSeed(runSeed, id), 0, size)).digest('hex');
    if (hashCache.size > 50_000) hashCache.clear();
    hashCache.set(key, h);
  }
  return h;
}

/** Content hash of bytes read back. */
export const bytesHash = (b: Buffer): string => createHash('sha1').update(b).digest('hex');
