/**
 * Scripted workloads for the crash explorer. Each runs on the fs layer
 * directly (no mount), applies every operation to the real file system and
 * to a Model, and leaves a snapshot of the model after each operation. The
 * same seed gives the same operations, stores and barriers.
 */
import { S_IFIFO, XATTR_CREATE, XATTR_REPLACE, type FileSystem, type Knobs } from '../fs/index.js';
import { baseName, Model, parentOf, type DataWrite, type Snapshot } from './model.js';
import { mixSeed, patternBytes, rng } from './image.js';

const OWNER = { uid: 0, gid: 0 };

export class Driver {
  readonly model = new Model();
  /** ops[i - 1] names operation i. */
  readonly ops: string[] = [];
  /** snapshots[i]: the model after operation i (0: before any). */
  readonly snapshots: Snapshot[] = [this.model.snapshot()];
  /** writes[i]: the data operation i stored in place. */
  readonly writes: DataWrite[][] = [[]];
  private current: DataWrite[] = [];
  private counter = 0;
  private readonly handles = new Map<string, number>();
  closed = false;
  readonly random: () => number;

  constructor(
    readonly fsys: FileSystem,
    readonly seed: number,
    /** Told the number of the operation that starts (events are tagged with it). */
    private readonly onOp: (op: number) => void,
  ) {
    this.random = rng(mixSeed(seed, 0x5eed));
  }

  get opCount(): number {
    return this.ops.length;
  }

  private step(name: string, fn: () => void): void {
    const i = this.ops.length + 1;
    this.onOp(i);
    this.ops.push(name);
    this.current = [];
    fn();
    this.writes.push(this.current);
    this.snapshots.push(this.model.snapshot());
  }

  ino(path: string): number {
    return this.fsys.resolve(path);
  }

  private parent(path: string): [number, string] {
    return [this.ino(parentOf(path)), baseName(path)];
  }

  create(path: string, mode = 0o644): void {
    this.step(`create ${path}`, () => {
      const [p, n] = this.parent(path);
      this.fsys.create(p, n, mode, OWNER);
      this.model.add(path, 'file', mode);
    });
  }

  mkfifo(path: string): void {
    this.step(`mkfifo ${path}`, () => {
      const [p, n] = this.parent(path);
      this.fsys.create(p, n, S_IFIFO | 0o600, OWNER);
      this.model.add(path, 'fifo', 0o600);
    });
  }

  mkdir(path: string, mode = 0o755): void {
    this.step(`mkdir ${path}`, () => {
      const [p, n] = this.parent(path);
      this.fsys.mkdir(p, n, mode, OWNER);
      this.model.add(path, 'dir', mode);
    });
  }

  symlink(path: string, target: string): void {
    this.step(`symlink ${path}`, () => {
      const [p, n] = this.parent(path);
      this.fsys.symlink(p, n, target, OWNER);
      this.model.add(path, 'symlink', 0o777, target);
    });
  }

  /** Distinct bytes for every write of every file. */
  private bytesFor(path: string, length: number): Buffer {
    return patternBytes(length, mixSeed(this.seed, this.model.node(path).id, ++this.counter));
  }

  write(path: string, offset: number, length: number): void {
    this.step(`write ${path} ${offset}+${length}`, () => {
      const data = this.bytesFor(path, length);
      const ino = this.ino(path);
      for (let done = 0; done < length;) done += this.fsys.write(ino, offset + done, data.subarray(done));
      this.current.push(this.model.write(path, offset, data));
    });
  }

  append(path: string, length: number): void {
    this.write(path, this.model.node(path).data.length, length);
  }

  truncate(path: string, size: number): void {
    this.step(`truncate ${path} ${size}`, () => {
      this.fsys.truncate(this.ino(path), size);
      this.model.truncate(path, size);
    });
  }

  chmod(path: string, mode: number): void {
    this.step(`chmod ${path} ${mode.toString(8)}`, () => {
      this.fsys.chmod(this.ino(path), mode);
      this.model.chmod(path, mode);
    });
  }

  rename(from: string, to: string): void {
    this.step(`rename ${from} ${to}`, () => {
      const [sp, sn] = this.parent(from);
      const [dp, dn] = this.parent(to);
      this.fsys.rename(sp, sn, dp, dn);
      this.model.rename(from, to);
    });
  }

  link(existing: string, path: string): void {
    this.step(`link ${existing} ${path}`, () => {
      const [p, n] = this.parent(path);
      this.fsys.link(this.ino(existing), p, n);
      this.model.link(existing, path);
    });
  }

  unlink(path: string): void {
    this.step(`unlink ${path}`, () => {
      const [p, n] = this.parent(path);
      this.fsys.unlink(p, n);
      this.model.unlink(path);
    });
  }

  rmdir(path: string): void {
    this.step(`rmdir ${path}`, () => {
      const [p, n] = this.parent(path);
      this.fsys.rmdir(p, n);
      this.model.unlink(path);
    });
  }

  setxattr(path: string, name: string, length: number, flags = 0): void {
    this.step(`setxattr ${path} ${name} ${length}`, () => {
      const value = this.bytesFor(path, length);
      this.fsys.setxattr(this.ino(path), name, value, flags);
      this.model.setxattr(path, name, value);
    });
  }

  removexattr(path: string, name: string): void {
    this.step(`removexattr ${path} ${name}`, () => {
      this.fsys.removexattr(this.ino(path), name);
      this.model.removexattr(path, name);
    });
  }

  fsync(path: string): void {
    this.step(`fsync ${path}`, () => this.fsys.fsync(this.ino(path), false));
  }

  sync(): void {
    this.step('sync', () => this.fsys.sync());
  }

  knob(name: keyof Knobs, value: number): void {
    this.step(`knob ${name}=${value}`, () => this.fsys.setKnob(name, value));
  }

  /** Open a handle on a file (its blocks live until release). */
  open(path: string): void {
    this.step(`open ${path}`, () => {
      const ino = this.ino(path);
      this.fsys.open(ino);
      this.handles.set(path, ino);
    });
  }

  /** Write through a handle whose file may have no name left. */
  writeHandle(path: string, offset: number, length: number): void {
    this.step(`write (handle) ${path} ${offset}+${length}`, () => {
      const ino = this.handles.get(path)!;
      const data = patternBytes(length, mixSeed(this.seed, ino, ++this.counter, 7));
      for (let done = 0; done < length;) done += this.fsys.write(ino, offset + done, data.subarray(done));
      if (this.model.has(path) && this.ino(path) === ino) this.current.push(this.model.write(path, offset, data));
    });
  }

  release(path: string): void {
    this.step(`release ${path}`, () => {
      this.fsys.release(this.handles.get(path)!);
      this.handles.delete(path);
    });
  }

  /** Let the pre-zeroer punch every queued free block now. */
  drainZeroer(): void {
    this.step('pre-zero the free blocks', () => this.fsys.core.zeroer.drain());
  }

  close(): void {
    this.step('close (clean unmount)', () => {
      this.fsys.close();
      this.closed = true;
    });
  }

  /** A random existing path of `kind` ('' when none). */
  pick(kind: 'file' | 'dir' | 'any', except: string[] = []): string {
    const all = this.model.paths().filter((p) => p !== '/' && !except.includes(p) &&
      (kind === 'any' || this.model.node(p).kind === kind));
    if (all.length === 0) return '';
    return all[Math.floor(this.random() * all.length)]!;
  }
}

export interface Workload {
  name: string;
  /** What it exercises (printed with the results). */
  about: string;
  /**
   * Pool size in MiB. 56 keeps a mapping of the pool under V8's 64 MiB
   * external-memory step (each open of a larger pool costs a full GC: 4 ms
   * a state) and leaves free space above the level where every operation
   * commits and resets the journal first; `journal` wants exactly that.
   */
  poolMiB: number;
  run(d: Driver): void;
}

const KiB = 1024;
const MiB = 1024 * 1024;

export const WORKLOADS: Workload[] = [
  {
    name: 'names',
    about: 'create, mkdir, symlinks (inline and in a block), fifo, hard links, rename (over files, directories, across directories), unlink, rmdir, a directory growing past one block',
    poolMiB: 56,
    run(d) {
      d.mkdir('/a');
      d.mkdir('/a/b');
      d.create('/a/f1');
      d.write('/a/f1', 0, 3000);
      d.create('/a/b/f2', 0o600);
      d.write('/a/b/f2', 0, 9000);
      d.symlink('/a/s-short', '../a/f1');
      d.symlink('/a/s-long', `/${'x'.repeat(200)}/target`);
      d.mkfifo('/a/pipe');
      d.fsync('/a/f1');
      d.link('/a/f1', '/a/b/f1-link');
      d.rename('/a/b/f2', '/a/f2');
      d.create('/a/f3');
      d.write('/a/f3', 0, 5000);
      d.rename('/a/f3', '/a/f1'); // over a file with a second name
      d.fsync('/a/f2');
      d.mkdir('/c');
      d.mkdir('/a/empty');
      d.rename('/c', '/a/empty'); // a directory over an empty one
      d.rename('/a/b', '/a/empty/b'); // a directory across directories
      d.unlink('/a/empty/b/f1-link');
      d.chmod('/a/f2', 0o640);
      d.sync();
      d.mkdir('/big');
      for (let i = 0; i < 40; i++) d.create(`/big/${'n'.repeat(90)}-${i}`);
      d.fsync('/big');
      for (let i = 0; i < 40; i += 3) d.unlink(`/big/${'n'.repeat(90)}-${i}`);
      d.rename('/big/' + 'n'.repeat(90) + '-1', '/a/moved');
      d.rmdir('/a/empty/b');
      d.unlink('/a/s-long');
      d.fsync('/a');
      d.rename('/a/moved', '/a/f2'); // over a file, no fsync after
      d.unlink('/a/pipe');
      d.mkdir('/a/newdir');
    },
  },
  {
    name: 'data',
    about: 'write, append, overwrite in place, truncate down and up, sparse writes, growth past 2 MiB (move into an aligned region), a fragmented file (extent chain), fsync at chosen points and long stretches without',
    poolMiB: 56,
    run(d) {
      d.create('/f');
      d.write('/f', 0, 10000);
      d.fsync('/f');
      d.write('/f', 4000, 3000); // in place
      d.append('/f', 6000);
      d.truncate('/f', 5000);
      d.append('/f', 100); // grows over the shrink: commits first
      d.fsync('/f');
      d.truncate('/f', 300 * KiB); // grow: a hole
      d.write('/f', 200 * KiB, 8 * KiB); // into the hole
      d.create('/g');
      d.write('/g', 1 * MiB, 4 * KiB); // sparse
      d.fsync('/g');
      d.create('/big');
      d.write('/big', 0, 700 * KiB);
      d.write('/big', 700 * KiB, 1800 * KiB); // past 2 MiB: moved into an aligned 2 MiB region
      d.fsync('/big');
      d.create('/frag1');
      d.create('/frag2');
      for (let i = 0; i < 12; i++) {
        d.append('/frag1', 4 * KiB);
        d.append('/frag2', 4 * KiB);
      }
      d.fsync('/frag1');
      d.truncate('/frag1', 10 * KiB);
      d.truncate('/big', 100 * KiB);
      d.unlink('/g');
      d.sync();
      d.write('/frag2', 0, 48 * KiB); // overwrite everything in place
      d.append('/frag2', 20 * KiB);
      d.unlink('/frag1');
      d.create('/late');
      d.write('/late', 0, 64 * KiB);
    },
  },
  {
    name: 'xattr',
    about: 'user.* and trusted.* attributes on files and directories: set, replace, remove, a near-full attribute block, removing the last one (block freed)',
    poolMiB: 56,
    run(d) {
      d.create('/x');
      d.mkdir('/dx');
      d.setxattr('/x', 'user.a', 10);
      d.setxattr('/dx', 'user.dir', 100);
      d.fsync('/x');
      d.setxattr('/x', 'user.a', 300, XATTR_REPLACE);
      d.setxattr('/x', 'trusted.t', 50, XATTR_CREATE);
      d.setxattr('/x', 'user.big', 3500);
      d.fsync('/x');
      d.removexattr('/x', 'user.big');
      d.removexattr('/x', 'user.a');
      d.setxattr('/dx', 'user.dir', 2000);
      d.sync();
      d.removexattr('/x', 'trusted.t'); // the last one: the block is freed
      d.create('/y');
      d.setxattr('/y', 'user.y', 700);
      d.unlink('/x');
      d.fsync('/y');
      d.setxattr('/y', 'user.z', 1);
      d.rmdir('/dx');
    },
  },
  {
    name: 'ppt',
    about: 'page tables on (built for existing files), then writes, growth past 2 MiB (huge entries), truncate and unlink with tables, page tables off again',
    poolMiB: 56,
    run(d) {
      d.create('/small');
      d.write('/small', 0, 20 * KiB);
      d.create('/mid');
      d.write('/mid', 0, 600 * KiB);
      d.sync();
      d.knob('pageTablesOn', 1);
      d.append('/small', 8 * KiB);
      d.fsync('/small');
      d.create('/huge');
      d.write('/huge', 0, 1 * MiB);
      d.write('/huge', 1 * MiB, 3 * MiB); // moved, one huge PMD entry
      d.fsync('/huge');
      d.truncate('/huge', 1500 * KiB); // the level changes
      d.truncate('/mid', 0);
      d.write('/mid', 100 * KiB, 4 * KiB);
      d.sync();
      d.unlink('/huge');
      d.create('/t');
      d.write('/t', 0, 12 * KiB);
      d.knob('pageTablesOn', 0);
      d.append('/t', 4 * KiB);
      d.fsync('/t');
    },
  },
  {
    name: 'orphan',
    about: 'files unlinked while open (orphans), written and truncated through the open handle, released before and after a commit',
    poolMiB: 56,
    run(d) {
      d.create('/o1');
      d.write('/o1', 0, 64 * KiB);
      d.create('/o2');
      d.write('/o2', 0, 16 * KiB);
      d.sync();
      d.open('/o1');
      d.unlink('/o1');
      d.writeHandle('/o1', 64 * KiB, 32 * KiB);
      d.fsync('/o2');
      d.open('/o2');
      d.truncate('/o2', 1000); // blocks held by the handle
      d.append('/o2', 5000);
      d.sync();
      d.release('/o1');
      d.create('/after');
      d.write('/after', 0, 80 * KiB); // may take the orphan's blocks only after a commit
      d.release('/o2');
      d.fsync('/after');
      d.unlink('/o2');
    },
  },
  {
    name: 'journal',
    about: 'a small pool (free space low: commits and journal resets before operations), many operations per transaction, the journal filling and restarting, a clean unmount at the end',
    poolMiB: 32,
    run(d) {
      for (let round = 0; round < 4; round++) {
        d.mkdir(`/r${round}`);
        for (let i = 0; i < 30; i++) {
          const p = `/r${round}/f${i}`;
          d.create(p);
          d.write(p, 0, 2000 + ((i * 997) % 9000));
        }
        for (let i = 0; i < 30; i += 4) d.unlink(`/r${round}/f${i}`);
        if (round % 2 === 1) d.sync();
      }
      d.rename('/r1', '/r0/r1');
      d.close();
    },
  },
  {
    name: 'prezero',
    about: 'zeroout_blocks 0: freed blocks are punched to zero in the background and reused; partial-block writes rely on them reading as zeros',
    poolMiB: 56,
    run(d) {
      d.knob('zerooutBlocks', 0);
      d.create('/p');
      d.write('/p', 0, 200 * KiB);
      d.create('/q');
      d.write('/q', 0, 100 * KiB);
      d.sync();
      d.unlink('/p');
      d.sync();
      d.drainZeroer();
      d.create('/r');
      d.write('/r', 100, 5000); // partial first and last blocks, on pre-zeroed blocks
      d.write('/r', 150 * KiB, 10); // sparse
      d.fsync('/r');
      d.truncate('/q', 10 * KiB);
      d.sync();
      d.drainZeroer();
      d.append('/r', 3000);
    },
  },
  {
    name: 'random',
    about: 'a seeded random mix of every operation above',
    poolMiB: 56,
    run(d) {
      d.mkdir('/d');
      for (let i = 0; i < 120; i++) {
        const r = d.random();
        const file = d.pick('file');
        const dir = d.pick('dir') || '/d';
        const fresh = `${dir}/n${i}`;
        if (r < 0.14 || !file) {
          d.create(fresh);
        } else if (r < 0.30) {
          d.write(file, Math.floor(d.random() * 64 * KiB), 1 + Math.floor(d.random() * 32 * KiB));
        } else if (r < 0.38) {
          d.append(file, 1 + Math.floor(d.random() * 16 * KiB));
        } else if (r < 0.44) {
          d.truncate(file, Math.floor(d.random() * 80 * KiB));
        } else if (r < 0.50) {
          d.mkdir(fresh);
        } else if (r < 0.56) {
          const other = d.pick('file', [file]);
          if (other && parentOf(other) !== file) d.rename(file, other);
          else d.rename(file, fresh);
        } else if (r < 0.61) {
          d.link(file, fresh);
        } else if (r < 0.67) {
          d.unlink(file);
        } else if (r < 0.71) {
          const empty = d.model.paths().filter((p) => p !== '/' && p !== '/d' && d.model.node(p).kind === 'dir' && d.model.children(p).length === 0);
          if (empty.length) d.rmdir(empty[0]!);
          else d.mkdir(fresh);
        } else if (r < 0.76) {
          d.setxattr(file, `user.k${i % 3}`, 1 + Math.floor(d.random() * 900));
        } else if (r < 0.79) {
          d.symlink(fresh, `target-${i}`.repeat(1 + Math.floor(d.random() * 30)));
        } else if (r < 0.90) {
          d.fsync(file);
        } else if (r < 0.93) {
          d.sync();
        } else if (r < 0.96) {
          d.knob('pageTablesOn', d.fsys.knobs().pageTablesOn ? 0 : 1);
        } else {
          d.chmod(file, 0o600 + Math.floor(d.random() * 0o100));
        }
      }
    },
  },
];

export function workloadByName(name: string): Workload | undefined {
  return WORKLOADS.find((w) => w.name === name);
}
