/**
 * The `.daxvm/` control directory at the mount's root: upstream's
 * /proc/fs/daxvm knobs as files, plus `user.daxvm.ppt` on every regular file.
 * The ops route every path under `/.daxvm` here (see `Control.owns`); nothing
 * here touches the file system's namespace.
 *
 *   page_tables_on    rw  0|1        build every table now and on allocation / delete them all
 *   msync             rw  0|1        0: nosync mode
 *   zeroout_blocks    rw  0|1        1: zero on the allocation path; 0: pre-zero in the background
 *   zombie_max_pages  rw  1..2^20    batching threshold of the library
 *   kbytes_occupied   r   "PMEM: <KB>\nDRAM: <KB>\n"   page-table storage
 *   pool              r   the pool file's absolute path and a newline; readable
 *                         as the pool is (its read bits, owner and group)
 *   stats             r   JSON: fs.stats() and the occupancy, one object
 *
 * Decisions (each as /proc or ext4 would, where they have an answer):
 * - Listed: `ls -a MNT` shows `.daxvm` (the dot hides it from `ls` and shell
 *   globs, as /proc/self shows in `ls /proc`); `find`, `du` see it too. The
 *   name is reserved at the root: creating it (file, directory, symlink, link,
 *   rename onto it) answers EEXIST; a real entry of that name in an old pool
 *   is shadowed. Nothing under it can be created, removed or renamed (EPERM),
 *   nor chmod/chown'ed (EPERM, as /proc/sys); utimens is accepted and ignored
 *   (`touch` works, as on /proc/sys).
 * - Modes: knob files 0644, read-only files 0444, the directory 0555, owned by
 *   the daemon's user (the kernel's default_permissions keeps other users out).
 *   Root bypasses modes, so opening a read-only file for writing (and
 *   truncate(2) on it) answers EACCES here: the same error a non-root user
 *   gets from the kernel. (/proc lets root open and fails the write with EIO,
 *   which reads like a device error; we refuse up front.)
 * - `echo N > knob`: the shell's O_TRUNC arrives as a truncate, a no-op; the
 *   value is applied at write, each write(2) parsed on its own (as a sysfs
 *   store): surrounding white space is ignored, anything else but a number in
 *   range is EINVAL and changes nothing.
 * - Sizes and caching: control files are opened with direct_io (reads go
 *   to us, whatever st_size the kernel holds) and their attributes are
 *   never cached (timeout 0): `stats` and `kbytes_occupied` change with the
 *   workload. An open takes a snapshot that its reads serve (content cannot
 *   change under a reader); getattr with a handle reports that snapshot's
 *   length, without one the longest of the fresh content and the open
 *   snapshots (fstat(2) comes without the handle).
 * - With -o no_open there is no open, hence no direct_io and no handle: the
 *   kernel caches a control file's pages like any file's. The path walk
 *   stands for the open: control files' entries then have timeout 0, so each
 *   open(2) (and stat) of one asks LOOKUP, which takes the snapshot that
 *   reads serve until the next LOOKUP, and reports it with an mtime no reply
 *   gave before (the file's time plus a microsecond step per snapshot, which
 *   `ls -l` does not show). The kernel's auto_inval_data (negotiated then,
 *   native-shim/fuse/ops.c) drops the cached pages when the mtime changes;
 *   GETATTRs between two LOOKUPs report the same snapshot, so one reader's
 *   read(2)s and its end of file agree. Two readers walking the path at the
 *   same moment may see one's bytes end where the other's snapshot does.
 * - xattrs: none on control files (get: ENODATA, list: empty, set/remove:
 *   EPERM).
 *
 * `user.daxvm.ppt` on a regular file answers fs.pptInfo(ino): `ino=.. gen=..
 * seq=.. root=.. level=.. nodes=.. size=..` (no newline). It is computed, not
 * stored: not listed by listxattr (so `getfattr -d`, `cp -a` and `rsync -X`
 * neither show nor copy it, as with ext4's computed attributes), setting or
 * removing it is EPERM on any inode, and other inodes answer ENODATA.
 */
import { constants, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import {
  FsError, KNOB_FILES, parseKnobValue, ROOT_INO, S_IFDIR, S_IFMT, S_IFREG,
  type Attr, type DirEntry, type FileSystemApi, type KnobName,
} from '../fs/index.js';
import { PPT_XATTR } from '../core/format/ppt.js';
import { log } from './reply.js';
import { CONTROL_DIR, type MountState } from './state.js';

const { O_RDONLY } = constants;
const ACCMODE = 3;

export const CONTROL_PATH = '/' + CONTROL_DIR;

/** Node ids (and st_ino) of the control directory and its files: above any the file system hands out (< 2^31). */
export const CONTROL_INO_BASE = 0xffffff00;

interface ControlFile {
  readonly name: string;
  readonly ino: number;
  content(fs: FileSystemApi): string;
  /** Absent: read-only. */
  write?(fs: FileSystemApi, text: string): void;
  /** Permission bits and owner, when not the default (0644/0444, the daemon's user). */
  perm?(fs: FileSystemApi): { mode: number; uid: number; gid: number };
}

/**
 * `.daxvm/pool` is no more readable than the pool (issue 16, edges): its
 * read bits, owner and group, so the kernel's default_permissions answers
 * EACCES to whoever could not read the pool file itself.
 */
function poolPerm(fs: FileSystemApi): { mode: number; uid: number; gid: number } {
  try {
    const st = statSync(fs.poolPath);
    return { mode: st.mode & 0o444, uid: st.uid, gid: st.gid };
  } catch {
    return { mode: 0o400, uid: 0, gid: 0 };
  }
}

function knobFile(name: string, knob: KnobName, ino: number): ControlFile {
  return {
    name,
    ino,
    content: (fs) => `${fs.knobs()[knob]}\n`,
    write: (fs, text) => {
      const value = parseKnobValue(knob, text);
      let done = 0;
      fs.setKnob(knob, value, () => {
        if (++done % 1024 === 0) log('%s=%d: %d files done', name, value, done);
      });
    },
  };
}

function controlFiles(extra: () => Record<string, unknown>, dramKB: () => number): ControlFile[] {
  const files: ControlFile[] = [];
  let ino = CONTROL_INO_BASE + 1;
  for (const [name, knob] of Object.entries(KNOB_FILES)) files.push(knobFile(name, knob, ino++));
  files.push({
    name: 'kbytes_occupied',
    ino: ino++,
    content: (fs) => {
      const o = fs.occupancy();
      return `PMEM: ${o.pmemKB}\nDRAM: ${o.dramKB + dramKB()}\n`;
    },
  });
  files.push({ name: 'pool', ino: ino++, content: (fs) => resolvePath(fs.poolPath) + '\n', perm: poolPerm });
  files.push({
    name: 'stats',
    ino: ino++,
    content: (fs) => {
      const o = fs.occupancy();
      return JSON.stringify({ ...fs.stats(), pmemKB: o.pmemKB, dramKB: o.dramKB + dramKB(), ...extra() }, null, 2) + '\n';
    },
  });
  return files;
}

interface ControlHandle {
  readonly file: ControlFile;
  readonly content: Buffer;
}

export class Control {
  private readonly byName = new Map<string, ControlFile>();
  private readonly byIno = new Map<number, ControlFile>();
  private readonly handles = new Map<number, ControlHandle>();
  private nextFh = 1;
  private readonly mountedAt = Date.now();
  /** Last time each knob was set through its file (its mtime). */
  private readonly changed = new Map<string, number>();
  /** no_open: each file's content as its last LOOKUP saw it (what its reads serve), and its mtime. */
  private readonly snapshots = new Map<number, { content: Buffer; step: number; mtimeMs: number }>();

  constructor(private readonly state: MountState) {
    const extra = (): Record<string, unknown> => ({
      requests: state.requestCounts(),
      daemonCpuUs: (() => { const c = process.cpuUsage(); return c.user + c.system; })(),
      ...state.sharedStats(),
    });
    for (const f of controlFiles(extra, () => state.sharedDramKB())) {
      this.byName.set(f.name, f);
      this.byIno.set(f.ino, f);
    }
  }

  /** Is this node id the control directory or one of its files? (They never reach the file system.) */
  static owns(ino: number): boolean {
    return ino >= CONTROL_INO_BASE;
  }

  /** A control file: its attributes change behind the kernel's back (never cached). The directory's do not. */
  static volatile(ino: number): boolean {
    return ino > CONTROL_INO_BASE;
  }

  /** Is this the reserved name at the root? */
  static reserved(parent: number, name: string): boolean {
    return parent === ROOT_INO && name === CONTROL_DIR;
  }

  /** Refuse to create a name: EEXIST for the reserved name itself, EPERM under the control directory. */
  static refuseCreate(parent: number, name: string): never {
    if (Control.reserved(parent, name)) throw new FsError('EEXIST', `/${CONTROL_DIR} is reserved for daxvm's control files`);
    throw new FsError('EPERM', `${name}: the control directory's names are fixed`);
  }

  /** Refuse to change a control node's name, mode, owner or xattrs. */
  static refuse(what: string | number): never {
    throw new FsError('EPERM', `${what}: control files cannot be changed this way`);
  }

  /** The entry for the root directory's listing. */
  get rootEntry(): DirEntry {
    return { name: CONTROL_DIR, ino: CONTROL_INO_BASE, type: S_IFDIR };
  }

  /** The control file of a node id, or undefined for the directory itself; ENOENT for anything else. */
  private fileOf(ino: number): ControlFile | undefined {
    if (ino === CONTROL_INO_BASE) return undefined;
    const f = this.byIno.get(ino);
    if (!f) throw new FsError('ENOENT', `no control file ${ino}`);
    return f;
  }

  private fileOrEisdir(ino: number): ControlFile {
    const f = this.fileOf(ino);
    if (!f) throw new FsError('EISDIR', CONTROL_PATH);
    return f;
  }

  /** Owned by the daemon's user unless told (the kernel's default_permissions keeps other users out of knobs). */
  private attr(ino: number, mode: number, nlink: number, size: number, mtimeMs: number,
    owner: { uid: number; gid: number } = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 }): Attr {
    const { uid, gid } = owner;
    return {
      ino, mode, nlink, uid, gid, rdev: 0, size, blocks: 0, blksize: 4096,
      atimeMs: mtimeMs, mtimeMs, ctimeMs: mtimeMs, generation: 0,
    };
  }

  /** lookup in the control directory (`parent` is CONTROL_INO_BASE), or of the directory itself. */
  lookup(parent: number, name: string): Attr {
    if (parent !== CONTROL_INO_BASE) {
      if (name === CONTROL_DIR) return this.getattr(CONTROL_INO_BASE);
      throw new FsError('ENOTDIR', `${name}: not a directory`);
    }
    if (name === '..') return this.state.live.getattr(ROOT_INO);
    const f = this.byName.get(name);
    if (!f) throw new FsError('ENOENT', `${CONTROL_PATH}/${name}: no such control file`);
    if (this.state.noOpen) this.snapshot(f, true); // a path walk: an open, as far as we can tell
    return this.getattr(f.ino);
  }

  getattr(ino: number, fh = 0): Attr {
    const f = this.fileOf(ino);
    if (!f) return this.attr(CONTROL_INO_BASE, S_IFDIR | 0o555, 2, 0, this.mountedAt);
    const h = fh ? this.handles.get(fh) : undefined;
    let size: number;
    let mtimeMs = this.changed.get(f.name) ?? this.mountedAt;
    if (this.state.noOpen) {
      const snap = this.snapshot(f, false);
      size = snap.content.length;
      mtimeMs = snap.mtimeMs;
    } else if (h && h.file === f) {
      size = h.content.length;
    } else {
      // Never less than what an open reader holds (fstat(2) comes without the handle).
      size = Buffer.byteLength(f.content(this.state.live));
      for (const other of this.handles.values()) if (other.file === f) size = Math.max(size, other.content.length);
    }
    const perm = f.perm?.(this.state.live);
    const mode = S_IFREG | (perm?.mode ?? (f.write ? 0o644 : 0o444));
    return this.attr(f.ino, mode, 1, size, mtimeMs, perm);
  }

  /**
   * no_open: the file's snapshot; `renew` takes a new one, whose mtime is
   * one microsecond step (a double holds them at today's times) past the
   * file's time, never the mtime of the snapshot before.
   */
  private snapshot(f: ControlFile, renew: boolean): { content: Buffer; step: number; mtimeMs: number } {
    let snap = this.snapshots.get(f.ino);
    if (!snap || renew) {
      const step = snap ? (snap.step + 1) % 1000 : 0;
      const mtimeMs = (this.changed.get(f.name) ?? this.mountedAt) + (step + 1) / 1000;
      snap = { content: Buffer.from(f.content(this.state.live)), step, mtimeMs };
      this.snapshots.set(f.ino, snap);
    }
    return snap;
  }

  readdir(ino: number): DirEntry[] {
    if (this.fileOf(ino)) throw new FsError('ENOTDIR', String(ino));
    return [
      { name: '.', ino: CONTROL_INO_BASE, type: S_IFDIR },
      { name: '..', ino: ROOT_INO, type: S_IFDIR },
      ...[...this.byName.values()].map(f => ({ name: f.name, ino: f.ino, type: S_IFREG })),
    ];
  }

  open(ino: number, flags: number): number {
    const f = this.fileOrEisdir(ino);
    if ((flags & ACCMODE) !== O_RDONLY && !f.write) throw new FsError('EACCES', `${f.name} is read-only`);
    const content = Buffer.from(f.content(this.state.live));
    let fh = this.nextFh;
    while (this.handles.has(fh)) fh = fh >= 0xffffffff ? 1 : fh + 1;
    this.nextFh = fh >= 0xffffffff ? 1 : fh + 1;
    this.handles.set(fh, { file: f, content });
    return fh;
  }

  read(ino: number, fh: number, position: number, dst: Buffer): number {
    const h = this.handles.get(fh);
    const content = h ? h.content : this.state.noOpen ? this.snapshot(this.fileOrEisdir(ino), false).content
      : Buffer.from(this.fileOrEisdir(ino).content(this.state.live));
    if (position >= content.length) return 0;
    return content.copy(dst, 0, position, Math.min(content.length, position + dst.length));
  }

  /** Apply a knob value: the whole buffer of one write(2), whatever its offset. */
  write(ino: number, fh: number, src: Buffer): number {
    const f = this.handles.get(fh)?.file ?? this.fileOrEisdir(ino);
    if (!f.write) throw new FsError('EACCES', `${f.name} is read-only`);
    f.write(this.state.live, src.toString('utf8'));
    this.changed.set(f.name, Date.now());
    if (this.state.noOpen) this.snapshot(f, true); // the new value, under a new mtime
    // A knob can change what stat shows of every file (page_tables_on: st_blocks): drop the kernel's copies.
    for (const ino of this.state.knownInodes()) this.state.io.invalInode(ino);
    return src.length;
  }

  release(fh: number): void {
    this.handles.delete(fh);
  }

  /** `echo N > knob` truncates first: nothing to do. Read-only files refuse, as at open. */
  truncate(ino: number): void {
    const f = this.fileOrEisdir(ino);
    if (!f.write) throw new FsError('EACCES', `${f.name} is read-only`);
  }

  get openHandles(): number {
    return this.handles.size;
  }
}

/** getxattr of `user.daxvm.ppt`: the table's whereabouts for regular files, ENODATA for others. */
export function pptXattr(fs: FileSystemApi, ino: number): Buffer {
  if ((fs.getattr(ino).mode & S_IFMT) !== S_IFREG) throw new FsError('ENODATA', `${PPT_XATTR}: not a regular file`);
  return Buffer.from(fs.pptInfo(ino));
}
