/**
 * A model of the file tree that a workload builds, kept beside the real file
 * system: after every operation a snapshot (names, kinds, modes, contents,
 * symlink targets, xattrs, which names share an inode). A recovered pool is
 * compared with the snapshots: it must equal one of them, except that bytes
 * which later writes stored in place (file data is not journaled) may show
 * the later bytes. A byte that is neither the snapshot's nor one that a
 * later write put at that offset of that file is a byte the file never
 * owned.
 */
import { FsError, ROOT_INO, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, type FileSystem } from '../fs/index.js';

export type Kind = 'file' | 'dir' | 'symlink' | 'fifo';

export interface MNode {
  readonly id: number;
  readonly kind: Kind;
  readonly mode: number;
  readonly data: Buffer;
  readonly target: string;
  readonly xattrs: ReadonlyMap<string, Buffer>;
}

export interface Snapshot {
  /** Path ("/" for the root, "/a/b") → model inode id. */
  readonly names: ReadonlyMap<string, number>;
  readonly nodes: ReadonlyMap<number, MNode>;
}

/** Bytes an operation stored into a file's data in place. */
export interface DataWrite {
  id: number;
  offset: number;
  data: Buffer;
}

const EMPTY = Buffer.alloc(0);

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export class Model {
  private names = new Map<string, number>([['/', 0]]);
  private nodes = new Map<number, MNode>([[0, { id: 0, kind: 'dir', mode: 0o755, data: EMPTY, target: '', xattrs: new Map() }]]);
  private nextId = 1;

  snapshot(): Snapshot {
    return { names: new Map(this.names), nodes: new Map(this.nodes) };
  }

  node(path: string): MNode {
    const id = this.names.get(path);
    if (id === undefined) throw new Error(`model: no ${path}`);
    return this.nodes.get(id)!;
  }

  has(path: string): boolean {
    return this.names.has(path);
  }

  /** Paths directly inside `dir`. */
  children(dir: string): string[] {
    const prefix = dir === '/' ? '/' : `${dir}/`;
    return [...this.names.keys()].filter((p) => p !== '/' && p.startsWith(prefix) && !p.slice(prefix.length).includes('/'));
  }

  paths(): string[] {
    return [...this.names.keys()];
  }

  add(path: string, kind: Kind, mode: number, target = ''): MNode {
    if (this.names.has(path)) throw new Error(`model: ${path} exists`);
    const node: MNode = { id: this.nextId++, kind, mode, data: EMPTY, target, xattrs: new Map() };
    this.nodes.set(node.id, node);
    this.names.set(path, node.id);
    return node;
  }

  private replace(node: MNode, change: Partial<MNode>): void {
    this.nodes.set(node.id, { ...node, ...change });
  }

  write(path: string, offset: number, data: Buffer): DataWrite {
    const node = this.node(path);
    const size = Math.max(node.data.length, offset + data.length);
    const next = Buffer.alloc(size);
    node.data.copy(next);
    data.copy(next, offset);
    this.replace(node, { data: next });
    return { id: node.id, offset, data };
  }

  truncate(path: string, size: number): void {
    const node = this.node(path);
    const next = Buffer.alloc(size);
    node.data.copy(next, 0, 0, Math.min(size, node.data.length));
    this.replace(node, { data: next });
  }

  /** fallocate without KEEP_SIZE: the size grows to `end` (the new bytes read as zeros), never shrinks. */
  extend(path: string, end: number): void {
    if (end > this.node(path).data.length) this.truncate(path, end);
  }

  /** Punched or zeroed: [start, end) reads as zeros, within the size only (KEEP_SIZE). */
  zero(path: string, start: number, end: number): void {
    const node = this.node(path);
    const to = Math.min(end, node.data.length);
    if (to <= start) return;
    const next = Buffer.from(node.data);
    next.fill(0, start, to);
    this.replace(node, { data: next });
  }

  setxattr(path: string, name: string, value: Buffer): void {
    const node = this.node(path);
    const x = new Map(node.xattrs);
    x.set(name, value);
    this.replace(node, { xattrs: x });
  }

  removexattr(path: string, name: string): void {
    const node = this.node(path);
    const x = new Map(node.xattrs);
    x.delete(name);
    this.replace(node, { xattrs: x });
  }

  link(existing: string, path: string): void {
    const id = this.names.get(existing)!;
    this.names.set(path, id);
  }

  /** Remove one name; the node goes when no name is left. */
  unlink(path: string): void {
    const id = this.names.get(path);
    if (id === undefined) throw new Error(`model: no ${path}`);
    this.names.delete(path);
    if (![...this.names.values()].includes(id)) this.nodes.delete(id);
  }

  /** rename(2): replaces a target name, moves a directory's whole subtree. */
  rename(from: string, to: string): void {
    if (from === to) return;
    const id = this.names.get(from)!;
    if (this.names.get(to) === id) return;
    if (this.names.has(to)) this.unlink(to);
    const moved: Array<[string, number]> = [];
    for (const [p, pid] of this.names) if (p === from || p.startsWith(`${from}/`)) moved.push([p, pid]);
    for (const [p] of moved) this.names.delete(p);
    for (const [p, pid] of moved) this.names.set(to + p.slice(from.length), pid);
  }

  chmod(path: string, mode: number): void {
    this.replace(this.node(path), { mode: mode & 0o7777 });
  }
}

/** What a walk of a real file system found. */
export interface ONode {
  ino: number;
  kind: Kind | 'other';
  mode: number;
  size: number;
  nlink: number;
  data: Buffer;
  target: string;
  xattrs: Map<string, Buffer>;
}

export interface Observed {
  names: Map<string, number>;
  nodes: Map<number, ONode>;
}

export function kindOf(mode: number): Kind | 'other' {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'file';
    case S_IFDIR: return 'dir';
    case S_IFLNK: return 'symlink';
    case S_IFIFO: return 'fifo';
    default: return 'other';
  }
}

/** Read a whole file through the API (1 MiB at a time). */
export function readWhole(fsys: FileSystem, ino: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const n = fsys.read(ino, done, buf.subarray(done, Math.min(size, done + (1 << 20))));
    if (n === 0) break;
    done += n;
  }
  return done === size ? buf : buf.subarray(0, done);
}

/**
 * Walk the tree from the root through the FileSystem API, reading every
 * file, link and attribute. Files larger than `maxFileBytes` are refused
 * (Error): a recovered size that large is wrong anyway.
 */
export function observe(fsys: FileSystem, maxFileBytes: number): Observed {
  const names = new Map<string, number>();
  const nodes = new Map<number, ONode>();
  const visit = (path: string, ino: number): void => {
    names.set(path, ino);
    if (nodes.has(ino)) return;
    const a = fsys.getattr(ino);
    const kind = kindOf(a.mode);
    const node: ONode = { ino, kind, mode: a.mode & 0o7777, size: a.size, nlink: a.nlink, data: EMPTY, target: '', xattrs: new Map() };
    nodes.set(ino, node);
    if (kind === 'file' || kind === 'dir') {
      for (const name of fsys.listxattr(ino)) node.xattrs.set(name, fsys.getxattr(ino, name));
    }
    if (kind === 'file') {
      if (a.size > maxFileBytes) throw new Error(`${path}: size ${a.size} is larger than any size the workload made`);
      node.data = readWhole(fsys, ino, a.size);
    } else if (kind === 'symlink') {
      node.target = fsys.readlink(ino);
    } else if (kind === 'dir') {
      for (const e of fsys.readdir(ino)) {
        if (e.name === '.' || e.name === '..') continue;
        visit(path === '/' ? `/${e.name}` : `${path}/${e.name}`, e.ino);
      }
    }
  };
  visit('/', ROOT_INO);
  return { names, nodes };
}

/**
 * Does the observed tree equal snapshot `snap`, with data bytes allowed to
 * show what `later` writes stored? Returns null when it does, else the
 * first difference found.
 */
export function compare(snap: Snapshot, obs: Observed, later: DataWrite[]): string | null {
  for (const p of snap.names.keys()) if (!obs.names.has(p)) return `${p} is missing`;
  for (const p of obs.names.keys()) if (!snap.names.has(p)) return `${p} is there but should not be`;
  const idToIno = new Map<number, number>();
  const inoToId = new Map<number, number>();
  const nameCount = new Map<number, number>();
  const subdirs = new Map<number, number>();
  for (const [p, id] of snap.names) {
    const ino = obs.names.get(p)!;
    if ((idToIno.get(id) ?? ino) !== ino || (inoToId.get(ino) ?? id) !== id) {
      return `${p}: hard links differ (names that share an inode in the model do not in the pool, or the other way)`;
    }
    idToIno.set(id, ino);
    inoToId.set(ino, id);
    nameCount.set(id, (nameCount.get(id) ?? 0) + 1);
    if (p !== '/' && snap.nodes.get(id)!.kind === 'dir') {
      const parent = snap.names.get(parentOf(p))!;
      subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
    }
  }
  for (const [id, ino] of idToIno) {
    const m = snap.nodes.get(id)!;
    const o = obs.nodes.get(ino)!;
    const where = [...snap.names].find(([, i]) => i === id)![0];
    if (o.kind !== m.kind) return `${where}: a ${o.kind}, should be a ${m.kind}`;
    if (m.kind !== 'symlink' && o.mode !== m.mode) return `${where}: mode ${o.mode.toString(8)}, should be ${m.mode.toString(8)}`;
    const nlink = m.kind === 'dir' ? 2 + (subdirs.get(id) ?? 0) : nameCount.get(id)!;
    if (o.nlink !== nlink) return `${where}: link count ${o.nlink}, should be ${nlink}`;
    if (m.kind === 'symlink' && o.target !== m.target) return `${where}: symlink target ${JSON.stringify(o.target.slice(0, 60))}, should be ${JSON.stringify(m.target.slice(0, 60))}`;
    const xd = xattrDiff(m.xattrs, o.xattrs);
    if (xd) return `${where}: ${xd}`;
    if (m.kind === 'file') {
      if (o.size !== m.data.length) return `${where}: size ${o.size}, should be ${m.data.length}`;
      const bad = foreignBytes(m.data, o.data, later.filter((w) => w.id === id));
      if (bad) return `${where}: ${bad}`;
    }
  }
  return null;
}

function xattrDiff(want: ReadonlyMap<string, Buffer>, got: Map<string, Buffer>): string | null {
  for (const [k, v] of want) {
    const g = got.get(k);
    if (!g) return `xattr ${k} is missing`;
    if (!g.equals(v)) return `xattr ${k} has the wrong value (${g.length} bytes, should be ${v.length})`;
  }
  for (const k of got.keys()) if (!want.has(k)) return `xattr ${k} is there but should not be`;
  return null;
}

/** Bytes of `got` that are neither `want`'s nor what a later write stored at that offset. */
function foreignBytes(want: Buffer, got: Buffer, later: DataWrite[]): string | null {
  if (got.equals(want)) return null;
  if (got.length !== want.length) return `read ${got.length} bytes of ${want.length}`;
  let first = -1;
  let count = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] === want[i]) continue;
    let ok = false;
    for (let k = later.length - 1; k >= 0 && !ok; k--) {
      const w = later[k]!; // k < later.length
      const at = i - w.offset;
      if (at >= 0 && at < w.data.length && w.data[at] === got[i]) ok = true;
    }
    if (ok) continue;
    if (first < 0) first = i;
    count++;
  }
  if (count === 0) return null;
  return `${count} byte(s) the file never held, the first at offset ${first} (0x${got[first]?.toString(16)}, should be 0x${want[first]?.toString(16)}${isZeroRange(got, first) ? '; zeros' : ''})`;
}

function isZeroRange(b: Buffer, from: number): boolean {
  const end = Math.min(b.length, from + 64);
  for (let i = from; i < end; i++) if (b[i] !== 0) return false;
  return true;
}

/** FsError code, or null for anything else. */
export function fsErrorCode(err: unknown): string | null {
  return err instanceof FsError ? err.code : null;
}
