/**
 * The driver of the crash explorer's workloads: each operation is applied
 * to the real file system (the fs layer, no mount) and to a Model, and a
 * snapshot of the model is kept after it, with the data it stored in place.
 * The same seed gives the same operations, stores and barriers.
 */
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, S_IFIFO, type FileSystem, type Knobs,
} from '../fs/index.js';
import { BLOCK_SIZE } from '../core/format/pool.js';
import { baseName, Model, parentOf, type DataWrite, type Snapshot } from './model.js';
import { mixSeed, patternBytes, pickOne, rng } from './image.js';

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

  /**
   * fallocate(2), `mode` as <linux/falloc.h>. Mode 0 and ZERO_RANGE grow the
   * size to the end of the range; the preallocated bytes read as zeros, and
   * so do punched and zeroed ones (within the size: KEEP_SIZE blocks past
   * EOF are invisible). What the fs zeroes in place, outside the
   * transaction, is recorded as a write of zeros: the partial blocks at the
   * ends of a punched range, the mapped blocks of a zeroed one. Whole blocks
   * punched are only unmapped: until the commit they keep their bytes.
   */
  fallocate(path: string, mode: number, offset: number, length: number): void {
    this.step(`fallocate ${path} ${fallocName(mode)} ${offset}+${length}`, () => {
      const ino = this.ino(path);
      const end = offset + length;
      this.fsys.fallocate(ino, mode, offset, length);
      if (!(mode & FALLOC_FL_KEEP_SIZE)) this.model.extend(path, end);
      const zeros = (from: number, to: number): void => {
        if (to <= from) return;
        this.model.zero(path, from, to);
        this.current.push({ id: this.model.node(path).id, offset: from, data: Buffer.alloc(to - from) });
      };
      if (mode & FALLOC_FL_ZERO_RANGE) zeros(offset, end);
      if (mode & FALLOC_FL_PUNCH_HOLE) {
        const firstWhole = Math.ceil(offset / BLOCK_SIZE) * BLOCK_SIZE;
        const endWhole = Math.floor(end / BLOCK_SIZE) * BLOCK_SIZE;
        if (firstWhole > endWhole) {
          zeros(offset, end);
        } else {
          zeros(offset, firstWhole);
          this.model.zero(path, firstWhole, endWhole);
          zeros(endWhole, end);
        }
      }
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

  /** What the mount's prewriter does after an fsync: zeros into the host's unwritten blocks ahead of use, and a barrier. */
  prewrite(): void {
    this.step('prewrite the blocks ahead', () => this.fsys.core.prewriter.tick(Number.MAX_SAFE_INTEGER));
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
    return pickOne(all, this.random);
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

function fallocName(mode: number): string {
  const flags = [
    [FALLOC_FL_KEEP_SIZE, 'keep-size'], [FALLOC_FL_PUNCH_HOLE, 'punch-hole'], [FALLOC_FL_ZERO_RANGE, 'zero-range'],
  ] as const;
  return flags.filter(([f]) => mode & f).map(([, n]) => n).join('|') || 'allocate';
}

export const KiB = 1024;
export const MiB = 1024 * 1024;
